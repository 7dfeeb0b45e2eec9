// The policy's counters that hits advance: its clock and the sketch's count
// of increments, kept per P and published in chunks, so that no hit writes a
// cache line another P is writing.

package cache

import (
	"sync/atomic"

	"github.com/offheap/offheap/internal/fence"
	"github.com/offheap/offheap/vmem"
)

// hitCounts counts the clock ticks and sketch increments of hits and
// misses. Each P counts into its own line and adds a full chunk to the
// shared totals, so the totals lag by less than a chunk per P; the chunk is
// kept small next to what the totals are compared with (the entries held,
// see setChunk). Ps numbered maxPs and above (maxPs is in handle.go)
// add to the totals directly.
//
// The shared totals each have a cache line of their own, away from what
// hits only read.
type hitCounts struct {
	region *vmem.Region
	locals []plocal // per P, off the Go heap
	chunk  atomic.Uint64
	_      [64]byte
	ticks  atomic.Uint64 // published clock ticks
	_      [56]byte
	adds   atomic.Int64 // published sketch increments
	_      [56]byte
}

// plocal is one P's unpublished counts, alone on a cache line.
type plocal struct {
	ticks, adds uint64
	_           [48]byte
}

func (c *hitCounts) init() error {
	r, err := vmem.Reserve(maxPs*sizeOf[plocal](), &vmem.Options{Name: "cache policy counts"})
	if err != nil {
		return err
	}
	if err := r.Grow(maxPs * sizeOf[plocal]()); err != nil {
		_ = r.Close()
		return err
	}
	c.region, c.locals = r, policyTable[plocal](r, maxPs)
	c.chunk.Store(1)
	return nil
}

// note counts a tick and an increment, either or both, for P pid, which the
// caller is pinned to.
func (c *hitCounts) note(pid int, tick, add bool) {
	if !tick && !add {
		return
	}
	if pid >= maxPs {
		if tick {
			c.ticks.Add(1)
		}
		if add {
			c.adds.Add(1)
		}
		return
	}
	l, chunk := &c.locals[pid], c.chunk.Load()
	if tick {
		if n := atomic.LoadUint64(&l.ticks) + 1; n < chunk {
			fence.StoreRelease(&l.ticks, n)
		} else {
			fence.StoreRelease(&l.ticks, 0)
			c.ticks.Add(n)
		}
	}
	if add {
		if n := atomic.LoadUint64(&l.adds) + 1; n < chunk {
			fence.StoreRelease(&l.adds, n)
		} else {
			fence.StoreRelease(&l.adds, 0)
			c.adds.Add(int64(n))
		}
	}
}

// setChunk sizes the chunk for a policy holding entries: 1/1024 of them,
// between 1 and 64, so that with up to 64 Ps the clock lags by at most a
// sixteenth of the entries and the sketch's count by less than a hundredth
// of its period. Callers hold the policy's lock.
func (c *hitCounts) setChunk(entries int64) {
	if want := uint64(min(max(entries/1024, 1), 64)); want != c.chunk.Load() {
		c.chunk.Store(want)
	}
}
