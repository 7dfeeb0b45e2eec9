package proc

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestQuiesceWaitsForPinned guards the property the arena's sweep
// relies on: Quiesce does not return while a section pinned before it is
// still running (it would if runtime.ReadMemStats stopped stopping the world).
func TestQuiesceWaitsForPinned(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	for range 20 {
		var pinned, done atomic.Bool
		go func() {
			Pin()
			pinned.Store(true)
			start := time.Now()
			for time.Since(start) < 5*time.Millisecond { // no calls that block
			}
			done.Store(true)
			Unpin()
		}()
		for !pinned.Load() {
			runtime.Gosched()
		}
		Quiesce()
		if !done.Load() {
			t.Fatal("Quiesce returned while a section pinned before it was running")
		}
	}
}
