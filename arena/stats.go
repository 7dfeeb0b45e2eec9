// Stats and Purge: what the allocator holds, and giving back all it can.

package arena

import "fmt"

// ClassStats describes one size class.
type ClassStats struct {
	Size   int // block size in bytes
	Blocks int // blocks allocated, including those held by caches
	Cached int // blocks held by caches, as of their last batch exchange
	Shared int // blocks held by the allocator's per-P caches
	Pages  int // pages in use by the class
}

// Stats is a snapshot of an allocator.
type Stats struct {
	Arenas         int // arenas active (pages may be in use) or spare
	ArenasReleased int // arenas whose pages all went back to the OS (address space kept)
	InUse          int // bytes of blocks allocated to users: block sizes, not requests; large blocks in whole pages
	InUseBlocks    int // blocks allocated to users
	Cached         int // bytes of free blocks held by caches, as of their last batch exchange (see Cache)
	Shared         int // bytes of free blocks held by the allocator's per-P caches (Purge and Close empty them; exact only while no call is in flight)
	Mapped         int // bytes of address space ready: arenas not released and their metadata, large blocks' pages and their metadata
	Resident       int // bytes of all the above resident in memory, page by page (mincore; 0 where unsupported)
	PagesInUse     int // pages serving a class
	PagesDirty     int // free pages still resident, waiting for a batch release
	LargeBlocks    int // live blocks above MaxSmall, each a span of whole pages
	Releases       int // calls that gave pages back to the OS
	ReleaseErrors  int // such calls that failed (the memory stayed resident; a large block's Free failed with them)
	Purges         int // calls to Purge
	Classes        []ClassStats
}

// Stats returns a snapshot of the allocator's state (after Close, only the
// counters of calls).
func (a *Allocator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lmu.Lock()
	defer a.lmu.Unlock()
	s := Stats{
		Releases: a.releases, ReleaseErrors: a.releaseErrs, Purges: a.purges,
		Classes: make([]ClassStats, 0, nClasses-1),
	}
	if ls := a.large; ls != nil {
		s.Releases += ls.releases
		s.ReleaseErrors += ls.failed
	}
	if a.closed.Load() {
		return s // everything is unmapped; nothing was allocated
	}
	for c := 1; c < nClasses; c++ {
		k := a.counts[c]
		sh := a.sharedHeld(c)
		s.Classes = append(s.Classes, ClassStats{Size: classSize[c], Blocks: k.blocks, Cached: k.cached, Shared: sh, Pages: k.pages})
		s.Shared += sh * classSize[c]
		user := max(k.blocks-k.cached-sh, 0)
		s.InUse += user * classSize[c]
		s.InUseBlocks += user
		s.Cached += k.cached * classSize[c]
		s.PagesInUse += k.pages
	}
	for ai := range int(a.carved.Load()) {
		switch a.arenas[ai].state.Load() {
		case arenaReleased:
			s.ArenasReleased++
		case arenaActive, arenaSpare:
			s.Arenas++
			s.PagesDirty += int(a.meta(ai).ndirty)
		}
	}
	s.Mapped += s.Arenas * (ArenaSize + metaStride)
	a.largeStats(&s)
	if n, err := a.region.Resident(); err == nil {
		s.Resident += n
	}
	if n, err := a.metaRegion.Resident(); err == nil {
		s.Resident += n
	}
	return s
}

// String summarises the stats on one line.
func (s Stats) String() string {
	return fmt.Sprintf("arenas %d (+%d released), in use %d B in %d blocks, cached %d B, shared %d B, mapped %d B, resident %d B, pages %d (+%d dirty), large %d",
		s.Arenas, s.ArenasReleased, s.InUse, s.InUseBlocks, s.Cached, s.Shared, s.Mapped, s.Resident, s.PagesInUse, s.PagesDirty, s.LargeBlocks)
}

// Purge gives back to the OS every page it can now: it empties the per-P
// caches into their pages (stopping the world for a moment to do so, see
// internal/proc.Quiesce), frees the empty pages each class keeps, and
// releases every dirty free page and the spare arena. Blocks held by caches
// stay allocated (Cache.Flush returns them).
func (a *Allocator) Purge() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return
	}
	a.purges++
	a.reclaim()
	a.releaseDirty()
	if a.spare >= 0 {
		ai := a.spare
		a.spare = -1
		a.releaseArena(ai)
	}
}
