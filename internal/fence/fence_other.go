//go:build !amd64 || race

// Ordering on weakly ordered processors, and under the race detector:
// sync/atomic's.

package fence

import "sync/atomic"

// Load orders the loads before it ahead of the loads after it. On arm64 an
// atomic load-acquire may be satisfied before earlier plain loads, so a
// seqlock reader could validate bytes it had not read yet; an atomic
// read-modify-write (acquire and release) on a local word is a full barrier.
func Load() { full() }

// Store orders the stores before it ahead of the stores after it: a
// release store does not keep later plain stores after it, a full barrier
// does.
func Store() { full() }

// StoreRelease stores v at addr, after every load and store before it
// (STLR on arm64).
func StoreRelease(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }

func full() {
	var x uint32
	atomic.AddUint32(&x, 0)
}
