// Package proc pins the calling goroutine to its P (the scheduler's
// processor), so per-P data can be used without atomics: while pinned, the
// goroutine is not preempted, so no other goroutine runs on that P.
//
// A pinned section must be short and must not block, allocate on the Go
// heap, make system calls or take locks: the runtime cannot stop the world,
// preempt or park the goroutine meanwhile. Stopping the world therefore also
// waits for every pinned section in flight to end, which is what lets an
// owner of per-P data sweep it safely (see Quiesce).
package proc

import (
	"runtime"
	_ "unsafe" // for go:linkname
)

// Pin disables preemption and returns the current P's id, below
// runtime.GOMAXPROCS; Unpin undoes it. The runtime keeps both linkable for
// this use (go.dev/issue/67401); sync.Pool pins the same way.
//
//go:linkname Pin runtime.procPin
func Pin() int

// Unpin ends the pinned section Pin began.
//
//go:linkname Unpin runtime.procUnpin
func Unpin()

// Quiesce returns once every pinned section that began before the call has
// ended. It stops the world (runtime.ReadMemStats does, and a stop cannot
// complete while any goroutine is pinned), so it costs tens of microseconds:
// for rare sweeps such as Close, never for hot paths. Memory written in those
// sections is visible to the caller afterwards.
func Quiesce() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
}
