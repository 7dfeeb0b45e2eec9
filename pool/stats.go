// Stats: a consistent snapshot of the pool's space and counters.

package pool

import "math/bits"

// Stats describes a pool's space and counts its operations.
type Stats struct {
	Capacity, Used, Free                     int     // bytes; Used counts rounded lengths; Used+Free == Capacity
	UsedSegments, FreeSegments, LargestFree  int     // segments (zero-length and released-but-latched ones too), free extents, biggest free extent in bytes
	Fragmentation                            float64 // 1 - LargestFree/Free; 0 when nothing is free
	Commits, FailedCommits, Reads, Latches   int     // Commits counts Reserve too; Latches counts Latch calls
	Releases, Compactions, BytesMoved, Grows int     // Compactions counts those that moved bytes

	MaxCapacity     int    // the most Capacity can grow to
	Alignment       int    // Options.Alignment: segments' lengths are rounded up to it
	MetaBytes       int    // bytes made ready for the slot table and per-P counters, off the Go heap
	PendingReleases int    // released segments waiting for their last Unlatch
	Name            string // Options.Name
}

// Stats returns a snapshot of the pool's figures. After Close it returns the
// counters as they were, with no space.
func (p *Pool) Stats() Stats {
	h, ok := p.lock()
	if !ok {
		return p.final
	}
	st := p.statsLocked()
	p.unlock(h)
	return st
}

// statsLocked builds Stats; callers hold the lock.
func (p *Pool) statsLocked() Stats {
	reads, latches := p.sumCounters()
	free := p.capacity - p.usedBytes()
	st := Stats{
		Capacity:        int(p.capacity),
		Used:            int(p.usedBytes()),
		Free:            int(free),
		UsedSegments:    p.liveSegments(),
		FreeSegments:    p.holes,
		LargestFree:     int(max(p.capacity-p.top, p.largestHole())),
		Commits:         p.commits,
		FailedCommits:   p.st.failedCommits,
		Reads:           int(reads),
		Latches:         int(latches),
		Releases:        p.releases,
		Compactions:     p.st.compactions,
		BytesMoved:      p.st.bytesMoved,
		Grows:           p.st.grows,
		MaxCapacity:     p.maxCap,
		Alignment:       int(p.alignMask + 1),
		MetaBytes:       p.meta.Len(),
		PendingReleases: p.pending,
		Name:            p.name,
	}
	if p.top < p.capacity {
		st.FreeSegments++
	}
	if free > 0 {
		st.Fragmentation = 1 - float64(st.LargestFree)/float64(free)
	}
	return st
}

// usedBytes returns the bytes segments hold: below top, all that is not hole.
func (p *Pool) usedBytes() uint64 { return p.top - p.holeBytes }

// liveSegments counts segments holding a ref or space: every commit, less
// every release but those waiting for their last Unlatch.
func (p *Pool) liveSegments() int { return p.commits - p.releases + p.pending }

// largestHole returns the size of the biggest hole: the largest in the
// highest non-empty size class.
func (p *Pool) largestHole() uint64 {
	t := &p.free
	if t.flMap == 0 {
		return 0
	}
	f := 63 - bits.LeadingZeros64(t.flMap)
	s := 31 - bits.LeadingZeros32(t.slMap[f])
	var m uint64
	for i := t.heads[f][s]; i != none; i = p.slot(i).link {
		m = max(m, p.slot(i).n)
	}
	return m
}
