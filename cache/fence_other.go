//go:build !amd64

// Ordering for seqlock readers on weakly ordered CPUs.

package cache

import "sync/atomic"

// loadFence orders the loads before it ahead of the loads after it. On arm64
// an atomic load-acquire of seq may be satisfied before earlier plain loads,
// so a reader could validate bytes it had not yet read; an atomic
// read-modify-write (acquire and release) on a local word is a full barrier.
func loadFence() {
	var x uint32
	atomic.AddUint32(&x, 0)
}
