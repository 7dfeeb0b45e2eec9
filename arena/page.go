// Pages and arenas: the out-of-band metadata and the state changes behind
// Alloc and Free, all made with the allocator's lock held.

package arena

import (
	"math/bits"
	"slices"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
)

// arenaInfo is the part of an arena's metadata kept on the Go heap: small
// and fixed, so the Go heap does not grow with the memory served.
type arenaInfo struct {
	state      atomic.Uint32 // arenaUnused...; read without the lock by Free's checks
	nfree      int           // pages not in use
	next, prev int32         // links in the allocator's byFree[nfree] list
	inDirty    bool          // listed in Allocator.dirty
}

// Arena states.
const (
	arenaUnused   uint32 = iota // never carved
	arenaActive                 // pages may be in use; on a byFree list when 0 < nfree < pagesPerArena
	arenaSpare                  // all pages free, kept against thrash
	arenaReleased               // all pages free, its memory (and its metadata's) given back; in Allocator.gone
)

// arenaMeta is the part of an arena's metadata that grows with it. It lives
// outside the Go heap, in the allocator's metadata region at a fixed stride
// per arena, so it goes back to the OS with the arena (and the Go heap never
// holds it); it holds no pointers.
type arenaMeta struct {
	pages          [pagesPerArena]pageInfo
	bigState       [pagesPerArena * bigStates]uint8 // block states of pages of classes of 64 bytes and more (see state.go)
	dirty, clean   [pagesPerArena]uint16            // stacks of free pages: resident, and released or never touched
	ndirty, nclean int32
	smallState     [pagesPerArena * smallStates]uint8 // block states of pages of the smaller classes, last: often untouched
}

// metaStride is the bytes of metadata region per arena: whole pages of any
// size up to maxPageSize, and a constant, so finding an arena's metadata
// costs a shift.
const metaStride = (metaSize + maxPageSize - 1) &^ (maxPageSize - 1)

// maxPageSize is the largest OS page size the allocator supports.
const maxPageSize = 64 << 10

// reset makes every page of the arena free and clean.
func (m *arenaMeta) reset() {
	m.ndirty = 0
	m.nclean = 0
	for i := pagesPerArena - 1; i >= 0; i-- {
		m.pages[i] = pageInfo{next: -1, prev: -1}
		m.pushClean(uint16(i))
	}
}

func (m *arenaMeta) pushClean(pi uint16) { m.clean[m.nclean] = pi; m.nclean++ }
func (m *arenaMeta) pushDirty(pi uint16) { m.dirty[m.ndirty] = pi; m.ndirty++ }

// pageInfo is the metadata of one page.
type pageInfo struct {
	class      atomic.Uint32 // size class in use, 0 when free; read without the lock by Free's checks
	nalloc     int32         // blocks allocated (to users or caches)
	next, prev int32         // global page indexes of the neighbours on the class list, or -1
	kept       bool          // empty and kept in use against thrash (counted in Allocator.nkeep)
}

// nBlocks is how many blocks of each class fit in a page; endOff is where
// the last one ends (no block starts at or after it).
var (
	nBlocks [classSlots]int
	endOff  [classSlots]uintptr
)

func init() {
	for c := 1; c < nClasses; c++ {
		nBlocks[c] = pageSize / classSize[c]
		endOff[c] = uintptr(nBlocks[c] * classSize[c])
	}
}

// page returns the metadata of the page holding page offset off.
func (a *Allocator) page(off uintptr) *pageInfo {
	// The index is below pagesPerArena: the mask only tells the compiler so.
	return &a.meta(int(off >> arenaShift)).pages[(off&(ArenaSize-1))>>pageShift&(pagesPerArena-1)]
}

func pageOff(g int32) uintptr { return uintptr(g) << pageShift }

// takeBlocks moves up to len(dst) free blocks of class c from their pages
// to the caller (state stCached) and puts their offsets in dst; it returns
// how many, and fails only if it got none. Callers hold a.mu.
func (a *Allocator) takeBlocks(c int, dst []uintptr) (int, error) {
	got := 0
	for got < len(dst) {
		g := a.used[c]
		if g < 0 {
			var err error
			if g, err = a.assignPage(c); err != nil {
				if got > 0 {
					return got, nil
				}
				return 0, err
			}
		}
		got += a.takeFromPage(c, g, dst[got:])
	}
	return got, nil
}

// takeFromPage moves up to len(dst) free blocks of page g, of class c, to
// the caller, as takeBlocks does, and returns how many.
func (a *Allocator) takeFromPage(c int, g int32, dst []uintptr) int {
	off := pageOff(g)
	p, states := a.page(off), a.states(off, c)
	n := findFree(states, c, dst)
	for i, j := range dst[:n] {
		setState(&states[j], c, stCached)
		start, _ := blockIn(int(j), c)
		dst[i] = off + start
	}
	if n > 0 && p.kept {
		p.kept = false
		a.nkeep[c]--
	}
	p.nalloc += int32(n)
	if int(p.nalloc) == nBlocks[c] {
		a.unlinkPage(c, g)
	}
	a.counts[c].blocks += n
	a.checkPage(off, c)
	return n
}

// freeBlock returns a block of class c held by a cache (state stCached) to
// its page. Callers hold a.mu.
func (a *Allocator) freeBlock(off uintptr, c int) {
	g := int32(off >> pageShift)
	p := a.page(off)
	setState(a.stateAt(off, c), c, stFree)
	if int(p.nalloc) == nBlocks[c] {
		a.linkPage(c, g)
	}
	p.nalloc--
	a.counts[c].blocks--
	a.checkPage(off, c)
	if p.nalloc == 0 {
		a.pageEmpty(c, g)
	}
}

// checkPage verifies, in the checked build, a page's count and states: as
// many blocks allocated (to users or caches) as its count says, every block
// in a state of its class, every byte past the last block 0.
func (a *Allocator) checkPage(off uintptr, c int) {
	if !check.On {
		return
	}
	p, states := a.page(off), a.states(off, c)
	alloc := 0
	for j, st := range states {
		_, block := blockIn(j, c)
		switch {
		case !block:
			check.Invariant(st == 0, "page %#x of class %d: state %#x in granule %d, where no block starts", off, c, st, j)
		case st>>stShift != uint8(c) || st&stMask == 0:
			check.Invariant(false, "page %#x of class %d: block of granule %d in state %#x", off, c, j, st)
		case st&stMask != stFree:
			alloc++
		}
	}
	check.Invariant(alloc == int(p.nalloc), "page %#x of class %d: %d allocated, states say %d", off, c, p.nalloc, alloc)
	check.Invariant(int(p.class.Load()) == c, "page %#x: class %d, want %d", off, p.class.Load(), c)
}

// assignPage puts a free page of the fullest arena in use for class c.
func (a *Allocator) assignPage(c int) (int32, error) {
	ai := a.fullestArena()
	if ai < 0 {
		var err error
		if ai, err = a.newArena(); err != nil {
			return -1, err
		}
	}
	ar, m := &a.arenas[ai], a.meta(int(ai))
	var pi uint16
	if m.ndirty > 0 {
		m.ndirty--
		pi = m.dirty[m.ndirty]
		a.ndirty--
	} else {
		pi = m.clean[m.nclean-1]
		off := int(ai)*ArenaSize + int(pi)*pageSize
		if err := a.reuse(off, pageSize); err != nil {
			return -1, err
		}
		m.nclean--
	}
	a.setFree(ai, ar.nfree-1)
	g := ai*int32(pagesPerArena) + int32(pi)
	check.Invariant(m.pages[pi].class.Load() == 0, "arena %d: free page %d has class %d", ai, pi, m.pages[pi].class.Load())
	a.initPage(g, c)
	return g, nil
}

// initPage readies a free page for class c: every block free.
func (a *Allocator) initPage(g int32, c int) {
	off := pageOff(g)
	p := a.page(off)
	states := a.states(off, c)
	for i := range nBlocks[c] {
		setState(&states[(i*classSize[c])>>stateGran[c]], c, stFree)
	}
	p.nalloc = 0
	p.class.Store(uint32(c))
	a.linkPage(c, g)
	a.counts[c].pages++
}

// pageEmpty handles a page of class c whose last block was freed: kept in
// use if the class keeps fewer than KeepEmpty empty pages, freed otherwise.
func (a *Allocator) pageEmpty(c int, g int32) {
	if a.nkeep[c] < a.keepEmpty {
		a.page(pageOff(g)).kept = true
		a.nkeep[c]++
		return
	}
	a.unassign(c, g)
}

// unkeepAll frees every empty page class c keeps.
func (a *Allocator) unkeepAll(c int) {
	for g := a.used[c]; g >= 0 && a.nkeep[c] > 0; {
		p := a.page(pageOff(g))
		next := p.next
		if p.kept {
			p.kept = false
			a.nkeep[c]--
			a.unassign(c, g)
		}
		g = next
	}
}

// unassign makes an empty page of class c free and dirty.
func (a *Allocator) unassign(c int, g int32) {
	off := pageOff(g)
	check.Invariant(a.page(off).nalloc == 0 && !a.page(off).kept, "freeing page %#x with %d blocks allocated", off, a.page(off).nalloc)
	a.unlinkPage(c, g)
	a.page(off).class.Store(0)
	clear(a.states(off, c)) // no stale free can claim a block now
	a.counts[c].pages--
	ai := int32(off >> arenaShift)
	ar := &a.arenas[ai]
	a.meta(int(ai)).pushDirty(uint16(g) & uint16(pagesPerArena-1))
	a.ndirty++
	if !ar.inDirty {
		ar.inDirty = true
		a.dirty = append(a.dirty, ai)
	}
	a.setFree(ai, ar.nfree+1)
	if ar.nfree == pagesPerArena {
		a.arenaEmpty(ai)
	} else if a.ndirty >= a.releaseBatch {
		a.releaseDirty()
	}
}

// linkPage puts page g at the head of class c's list.
func (a *Allocator) linkPage(c int, g int32) {
	p := a.page(pageOff(g))
	p.prev, p.next = -1, a.used[c]
	if p.next >= 0 {
		a.page(pageOff(p.next)).prev = g
	}
	a.used[c] = g
}

// unlinkPage takes page g off class c's list.
func (a *Allocator) unlinkPage(c int, g int32) {
	p := a.page(pageOff(g))
	if p.prev >= 0 {
		a.page(pageOff(p.prev)).next = p.next
	} else {
		a.used[c] = p.next
	}
	if p.next >= 0 {
		a.page(pageOff(p.next)).prev = p.prev
	}
	p.next, p.prev = -1, -1
}

// setFree sets an active arena's count of free pages, moving it between the
// byFree lists; only counts strictly between 0 and pagesPerArena are listed.
func (a *Allocator) setFree(ai int32, k int) {
	ar := &a.arenas[ai]
	check.Invariant(k >= 0 && k <= pagesPerArena && ar.state.Load() == arenaActive, "arena %d (state %d): %d free pages", ai, ar.state.Load(), k)
	if listed(ar.nfree) {
		if ar.prev >= 0 {
			a.arenas[ar.prev].next = ar.next
		} else {
			a.byFree[ar.nfree] = ar.next
			if ar.next < 0 {
				a.nonEmp[ar.nfree/64] &^= 1 << (ar.nfree % 64)
			}
		}
		if ar.next >= 0 {
			a.arenas[ar.next].prev = ar.prev
		}
	}
	ar.nfree = k
	ar.next, ar.prev = -1, -1
	if listed(k) {
		ar.next = a.byFree[k]
		if ar.next >= 0 {
			a.arenas[ar.next].prev = ai
		}
		a.byFree[k] = ai
		a.nonEmp[k/64] |= 1 << (k % 64)
	}
}

func listed(k int) bool { return k > 0 && k < pagesPerArena }

// fullestArena returns the active arena with the fewest free pages (but one
// at least), or -1.
func (a *Allocator) fullestArena() int32 {
	for i, w := range a.nonEmp {
		if w != 0 {
			return a.byFree[i*64+bits.TrailingZeros64(w)]
		}
	}
	return -1
}

// newArena returns an arena with every page free: the spare, a released one
// or a newly carved one.
func (a *Allocator) newArena() (int32, error) {
	var ai int32
	switch {
	case a.spare >= 0:
		ai, a.spare = a.spare, -1
		if ar, m := &a.arenas[ai], a.meta(int(ai)); m.ndirty > 0 {
			a.ndirty += int(m.ndirty)
			if !ar.inDirty {
				ar.inDirty = true
				a.dirty = append(a.dirty, ai)
			}
		}
	case len(a.gone) > 0:
		ai = a.gone[len(a.gone)-1]
		if err := a.metaRegion.Reuse(int(ai)*metaStride, metaStride); err != nil {
			return -1, err
		}
		a.gone = a.gone[:len(a.gone)-1]
		a.meta(int(ai)).reset()
	default:
		var err error
		if ai, err = a.carve(); err != nil {
			return -1, err
		}
	}
	ar := &a.arenas[ai]
	ar.state.Store(arenaActive)
	ar.nfree = pagesPerArena
	ar.next, ar.prev = -1, -1
	return ai, nil
}

// carve makes the next arena of the reservation ready and its metadata.
func (a *Allocator) carve() (int32, error) {
	n := int(a.carved.Load())
	if n == len(a.arenas) {
		return -1, ErrExhausted
	}
	if err := a.region.Grow((n + 1) * ArenaSize); err != nil {
		return -1, err
	}
	if err := a.metaRegion.Grow((n + 1) * metaStride); err != nil {
		return -1, err
	}
	a.meta(n).reset()
	a.carved.Store(int64(n + 1))
	return int32(n), nil
}

// carvedEnd returns the end of the carved arenas, as an offset from the
// reservation. It only grows, so a copy of it (as a Cache keeps) stays a
// sound bound on the offsets where pages and their metadata are.
func (a *Allocator) carvedEnd() uintptr { return uintptr(a.carved.Load()) * ArenaSize }

// arenaEmpty handles an arena whose pages are all free: it becomes the spare
// if there is none, and is released otherwise.
func (a *Allocator) arenaEmpty(ai int32) {
	a.ndirty -= int(a.meta(int(ai)).ndirty)
	if a.spare < 0 {
		a.spare = ai
		a.arenas[ai].state.Store(arenaSpare)
		return
	}
	a.releaseArena(ai)
}

// releaseArena gives a whole free arena's pages, and its metadata's, back
// to the OS; its metadata is reset when it is reused.
func (a *Allocator) releaseArena(ai int32) {
	a.arenas[ai].state.Store(arenaReleased)
	a.release(int(ai)*ArenaSize, ArenaSize)
	a.releases++
	if err := a.metaRegion.Release(int(ai)*metaStride, metaStride); err != nil {
		a.releaseErrs++
	}
	a.gone = append(a.gone, ai)
}

// releaseDirty gives every dirty free page of the active arenas back to the
// OS, adjacent pages in one call.
func (a *Allocator) releaseDirty() {
	for _, ai := range a.dirty {
		ar := &a.arenas[ai]
		ar.inDirty = false
		if ar.state.Load() != arenaActive {
			continue
		}
		m := a.meta(int(ai))
		dirty := m.dirty[:m.ndirty]
		slices.Sort(dirty)
		start := 0
		for i := 1; i <= len(dirty); i++ {
			if i == len(dirty) || dirty[i] != dirty[i-1]+1 {
				off := int(ai)*ArenaSize + int(dirty[start])*pageSize
				a.release(off, (i-start)*pageSize)
				start = i
			}
		}
		for _, pi := range dirty {
			m.pushClean(pi)
		}
		m.ndirty = 0
	}
	a.dirty = a.dirty[:0]
	a.ndirty = 0
}

// release hands the whole OS pages inside [off, off+n) of the reservation
// back to the OS (all of it where pages are 4 KiB). A failure only costs
// memory (correctness never relies on released pages reading as zero), so it
// is counted, not returned.
func (a *Allocator) release(off, n int) {
	lo, hi := (off+osPage-1)&^(osPage-1), (off+n)&^(osPage-1)
	if hi <= lo {
		return
	}
	a.releases++
	if err := a.region.Release(lo, hi-lo); err != nil {
		a.releaseErrs++
	}
}

// reuse makes the OS pages covering [off, off+n) of the reservation ready
// again after a release.
func (a *Allocator) reuse(off, n int) error {
	lo, hi := off&^(osPage-1), (off+n+osPage-1)&^(osPage-1)
	return a.region.Reuse(lo, hi-lo)
}
