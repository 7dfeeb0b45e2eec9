// Per-P operation counters, so lock-free Read and Latch count themselves
// without an atomic add on a shared cache line.

package pool

import (
	"sync/atomic"

	"github.com/offheap/offheap/internal/proc"
)

// pcounter is one P's counters, alone on a cache line. It lives in the meta
// region (off the Go heap): while pinned, only goroutines on that P touch it,
// one at a time; Stats reads it racily, which for aligned words on 64-bit
// platforms only risks a slightly stale sum.
type pcounter struct {
	reads, latches uint64
	_              [48]byte
}

const (
	maxProcs     = 256
	countersSize = maxProcs * 64 // unsafe.Sizeof(pcounter{}) * maxProcs, checked by the compiler in unsafe.go
)

func (p *Pool) countRead() {
	if id := proc.Pin(); id < maxProcs {
		p.counters[id].reads++
	} else {
		p.overflow.reads.Add(1)
	}
	proc.Unpin()
}

func (p *Pool) countLatch() {
	if id := proc.Pin(); id < maxProcs {
		p.counters[id].latches++
	} else {
		p.overflow.latches.Add(1)
	}
	proc.Unpin()
}

// sumCounters adds up every P's counters.
func (p *Pool) sumCounters() (reads, latches uint64) {
	for i := range p.counters {
		c := &p.counters[i]
		reads += atomic.LoadUint64(&c.reads)
		latches += atomic.LoadUint64(&c.latches)
	}
	return reads + p.overflow.reads.Load(), latches + p.overflow.latches.Load()
}

// overflowCounts count for Ps numbered maxProcs and above (GOMAXPROCS > 256).
type overflowCounts struct{ reads, latches atomic.Uint64 }
