// Per-P caches: the shared Allocator's fast path. Alloc and Free pin the
// goroutine to its P and pop or push that P's cache (a Cache of its own) with
// plain loads and stores; only a cache found empty or full takes the lock,
// to move a batch. The race detector cannot see the ownership a pin gives
// (nor the soundness of a byte store beside a compare-and-swap of its word,
// see stateWord), and the checked build checks every free under the lock,
// so both take the lock for every call instead, and change state bytes only
// under it.

package arena

import (
	"errors"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

// perP says whether Alloc and Free use the per-P caches.
const perP = !check.On && !proc.Race

// maxProcs bounds the Ps with a cache; goroutines on Ps numbered higher
// (GOMAXPROCS above maxProcs) take the lock for every call.
const maxProcs = 256

// readyCache gives P pid a cache if it has none, and reports whether the
// per-P caches may be used. Callers hold a.mu.
func (a *Allocator) readyCache(pid int) bool {
	if !perP || pid < 0 || pid >= maxProcs || a.paused.Load() {
		return false
	}
	if a.pcs[pid].Load() == nil {
		a.pcs[pid].Store(a.NewCache())
	}
	return true
}

// stash puts blocks of class k in the current P's cache, and gives back to
// the pages what does not fit.
func (a *Allocator) stash(k int, blocks []uintptr) {
	put := 0
	pid := proc.Pin()
	if uint(pid) < maxProcs && !a.paused.Load() {
		if c := a.pcs[pid].Load(); c != nil {
			put = c.fill(k, blocks)
		}
	}
	proc.Unpin()
	a.giveBack(k, blocks[put:])
}

// giveBack returns blocks of class k to their pages.
func (a *Allocator) giveBack(k int, blocks []uintptr) {
	if len(blocks) == 0 {
		return
	}
	a.mu.Lock()
	a.freeBlocks(k, blocks)
	a.mu.Unlock()
}

// freeBlocks returns blocks of class k to their pages. Callers hold a.mu.
func (a *Allocator) freeBlocks(k int, blocks []uintptr) {
	for _, off := range blocks {
		a.freeBlock(off, k)
	}
}

// takeBlocksOrReclaim is takeBlocks, but when the reservation is full it
// first takes back what the per-P caches and the kept empty pages hold
// (free blocks that keep pages in use) and tries once more, for one block.
// Callers hold a.mu.
func (a *Allocator) takeBlocksOrReclaim(k int, dst []uintptr) (int, error) {
	got, err := a.takeBlocks(k, dst)
	if !errors.Is(err, ErrExhausted) {
		return got, err
	}
	a.reclaim()
	return a.takeBlocks(k, dst[:1])
}

// reclaim gives back to the pages the free blocks that keep pages in use:
// those the per-P caches hold, and the empty pages each class keeps.
// Callers hold a.mu.
func (a *Allocator) reclaim() {
	a.sweepCaches()
	a.paused.Store(false)
	for c := 1; c < nClasses; c++ {
		a.unkeepAll(c)
	}
}

// sweepCaches stops the fast paths from using the per-P caches (until
// a.paused is cleared), waits for those in flight to end, and gives every
// block the caches hold back to the pages. Callers hold a.mu.
func (a *Allocator) sweepCaches() {
	a.paused.Store(true)
	if !perP {
		return
	}
	proc.Quiesce()
	for pid := range a.pcs {
		c := a.pcs[pid].Load()
		if c == nil {
			continue
		}
		for k := 1; k < nClasses; k++ {
			a.freeBlocks(k, c.stack(k))
			c.held[k] = 0
		}
	}
}

// sharedHeld returns how many class k blocks the per-P caches hold. It reads
// them without stopping their owners, so the figure is exact only while no
// Alloc or Free is in flight. Callers hold a.mu.
func (a *Allocator) sharedHeld(k int) int {
	n := 0
	for pid := range a.pcs {
		if c := a.pcs[pid].Load(); c != nil {
			n += c.held[k]
		}
	}
	return n
}
