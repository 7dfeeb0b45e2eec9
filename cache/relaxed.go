// Relaxed loads and stores: the policy's counters that hits bump without a
// locked instruction.

package cache

import (
	"math/bits"
	"sync/atomic"

	"github.com/offheap/offheap/internal/proc"
)

// relaxed is true where the counters below are plain loads and stores: on
// 64-bit platforms without the race detector.
//
// A hit bumps three counters: its sketch word, its CLOCK counter and its P's
// share of the policy's counts. Each is an estimate whose lost updates the
// policy already tolerates (an increment that loses a race is dropped, a
// CLOCK counter is "lossy under races"), or is written by one P only. On
// amd64 an atomic store is an XCHG and a compare-and-swap a LOCK CMPXCHG:
// each drains the store buffer and holds back the loads after it, so a hit
// on a counter not in the cache stalled the next lookup's loads behind that
// miss. Plain loads and stores let them overlap. They are sound because the
// Go memory model gives a racing read of a word-sized, aligned value one of
// the values written to it (no tearing, nothing out of thin air), which is
// all an estimate needs; 32-bit platforms, where a uint64 is two words, and
// the race detector, which would report the races the policy accepts, keep
// the atomic operations.
const relaxed = !proc.Race && bits.UintSize == 64

func relaxedLoad64(p *uint64) uint64 {
	if relaxed {
		return *p
	}
	return atomic.LoadUint64(p)
}

func relaxedStore64(p *uint64, v uint64) {
	if relaxed {
		*p = v
		return
	}
	atomic.StoreUint64(p, v)
}

func relaxedLoad32(p *uint32) uint32 {
	if relaxed {
		return *p
	}
	return atomic.LoadUint32(p)
}

func relaxedStore32(p *uint32, v uint32) {
	if relaxed {
		*p = v
		return
	}
	atomic.StoreUint32(p, v)
}
