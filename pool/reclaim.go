// Giving memory back: reclaimers (users such as a cache that free segments
// when a commit finds no room), TryReserve (a reservation that never takes
// the slow path), and Resize (capacity changed at run time, with the pages
// above the segments handed back to the operating system).

package pool

import (
	"fmt"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/vmem"
)

// A Reclaimer holds segments of a pool that it can give back on demand, as a
// cache can evict entries. When a Commit or Reserve finds no room, the pool
// asks its reclaimers to free space before it compacts, grows or fails with
// ErrFull.
//
// Reclaim runs on the goroutine whose commit found no room, with the pool's
// lock not held, and perhaps on several goroutines at once. It should release
// segments it holds that nobody has latched until at least need bytes are
// freed (or it has nothing left to give), and return the bytes it freed
// (rounded lengths, as Stats counts them). It must not commit to or reserve
// in the pool (that could ask it again), and a goroutine must not commit to
// the pool while holding a lock its reclaimers take.
type Reclaimer interface {
	Reclaim(need int) int
}

// AddReclaimer registers r; commits that find no room ask it for space from
// now on, after the reclaimers registered before it.
func (p *Pool) AddReclaimer(r Reclaimer) error {
	h, ok := p.lock()
	if !ok {
		return fmt.Errorf("%s: add reclaimer: %w", label(p.name), ErrClosed)
	}
	p.reclaimers = append(p.reclaimers[:len(p.reclaimers):len(p.reclaimers)], r)
	p.unlock(h)
	return nil
}

// RemoveReclaimer unregisters r. Calls already asking it may still run.
// Removing a reclaimer that is not registered does nothing.
func (p *Pool) RemoveReclaimer(r Reclaimer) {
	h, ok := p.lock()
	if !ok {
		return
	}
	var kept []Reclaimer
	for _, x := range p.reclaimers {
		if x != r {
			kept = append(kept, x)
		}
	}
	p.reclaimers = kept
	p.unlock(h)
}

// reclaimAndPlace asks each reclaimer in turn for size bytes and tries to
// place the segment after each one that freed some, round after round,
// until the segment is placed (ok) or a round frees nothing. The lock, taken
// as *h, is dropped while a reclaimer runs; if the pool closed meanwhile it
// returns ErrClosed with *h zero (the lock not held).
func (p *Pool) reclaimAndPlace(size uint64, h *uint64) (i uint32, ok bool, err error) {
	for {
		rs, freed := p.reclaimers, false // replaced, never changed in place
		for _, r := range rs {
			p.unlock(*h)
			n := r.Reclaim(int(size))
			if *h, ok = p.lock(); !ok {
				*h = 0
				return 0, false, ErrClosed
			}
			if n > 0 {
				freed = true
				if i, ok = p.place(size); ok {
					return i, true, nil
				}
			}
		}
		if !freed {
			return 0, false, nil
		}
	}
}

// failed ends a commit that failed with err: it counts the failure and
// drops the lock taken as h, unless h is zero (not held); it returns err.
func (p *Pool) failed(h uint64, err error) error {
	if h != 0 {
		p.st.failedCommits++
		p.unlock(h)
	}
	return err
}

// TryReserve is Reserve without the slow path: it places the segment in a
// hole that fits or above the last segment, and otherwise fails with ErrFull
// at once, without asking reclaimers, compacting or growing. A user that
// makes room itself (evicting, say) uses it to keep a pool within its
// capacity and away from compactions it knows cannot help. As such a user
// meets that failure in its steady state, it allocates nothing: the error
// (ErrFull, naming the pool but not n) is made once, at New.
func (p *Pool) TryReserve(n int) (Ref, []byte, error) {
	if n < 0 {
		return 0, nil, p.sizeError("reserve", n, ErrInvalid)
	}
	return p.reserve("reserve", n, flagUnpub|latchOne, false)
}

// Resize sets the pool's capacity to n bytes (rounded up to the alignment),
// at most MaxCapacity. Growing makes more of the reservation ready in place.
// Shrinking compacts when segments lie past n, then gives the pages of all
// free space back to the operating system, so RSS falls at once; a latched
// segment that still reaches past n keeps the capacity at its end, and
// Resize then returns ErrBusy. Commits may grow the pool again later, up to
// MaxCapacity.
func (p *Pool) Resize(n int) error {
	h, ok := p.lock()
	if !ok {
		return p.sizeError("resize to", n, ErrClosed)
	}
	defer p.unlock(h)
	c := p.size(uint64(n))
	switch {
	case n <= 0:
		return p.sizeError("resize to", n, ErrInvalid)
	case c > uint64(p.maxCap):
		return p.sizeError("resize to", n, ErrTooLarge)
	case c >= p.capacity:
		return p.growTo(c)
	}
	if p.top > c {
		p.compact()
	}
	p.capacity = max(c, p.top)
	p.releaseFree()
	if check.On {
		p.checkAfterMutation()
	}
	if p.top > c {
		return p.sizeError("resize to", n, fmt.Errorf("latched segments end at %d: %w", p.top, ErrBusy))
	}
	return nil
}

// growTo makes the capacity c bytes. Callers hold the lock.
func (p *Pool) growTo(c uint64) error {
	if c > uint64(p.data.Len()) {
		if err := p.data.Grow(int(c)); err != nil {
			return p.sizeError("resize to", int(c), err)
		}
		atomic.StoreUint64(&p.dataReady, uint64(p.data.Len()))
	}
	if c > p.capacity {
		p.st.grows++
	}
	p.capacity = c
	return nil
}

// releaseFree gives back to the OS the whole pages of every hole and of the
// ready space above top. Callers hold the lock.
func (p *Pool) releaseFree() {
	p.discard(p.top, uint64(p.data.Len()))
	t := &p.free
	for f := range t.heads {
		for s := range t.heads[f] {
			for i := t.heads[f][s]; i != none; i = p.slot(i).link {
				h := p.slot(i)
				p.discard(h.off, h.off+h.n)
			}
		}
	}
}

// discard drops the pages wholly inside [from, to) of the data region: they
// read as zero after. The checked build makes them accessible again at once
// (vmem protects released pages), since the pool may place segments there
// without asking; no view of free space is ever handed out.
func (p *Pool) discard(from, to uint64) {
	ps := uint64(vmem.PageSize())
	from, to = (from+ps-1)&^(ps-1), to&^(ps-1)
	if to <= from {
		return
	}
	if p.data.Release(int(from), int(to-from)) == nil && check.On {
		_ = p.data.Reuse(int(from), int(to-from))
	}
}
