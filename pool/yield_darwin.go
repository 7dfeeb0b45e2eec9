// Yielding the CPU to other threads, on Darwin.

package pool

import "runtime"

// osYield yields the P; Darwin's sched_yield is not reachable without cgo,
// and this platform is built, not benchmarked.
func osYield() { runtime.Gosched() }
