// The store: the entries and everything that finds them (the pool they live
// in, the entry table, the index, the policy), which a Resize of a cache
// with a pool of its own may rebuild in fresh memory.

package cache

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"github.com/offheap/offheap/internal/fence"
	"github.com/offheap/offheap/internal/proc"
	"github.com/offheap/offheap/pool"
	"github.com/offheap/offheap/vmem"
)

// store holds a cache's entries. Lock-free readers load the cache's
// current store once per operation; a store replaced by a rebuild is
// retired: its memory goes back to the OS at once, and its reservations are
// unmapped once no reader holds it.
type store struct {
	p    *pool.Pool
	base unsafe.Pointer // the pool's offset 0
	hi   atomic.Uint64  // end of the highest segment ever placed in p
	ents offTable[entry]
	refs offTable[uint64] // each entry's pool.Ref, beside the entries: only writers need it
	idx  index
	pol  *policy
	// epoch tells the cache's stores apart (an own Handle names its store
	// by it): 1 for the first, one more for each that replaces it, never 0.
	// Set before the store is published.
	epoch uint32

	// Guarded by the cache's lock.
	freeID   uint32 // top of the free-id stack, or noID
	nextID   uint32 // ids ever used: [0, nextID)
	retired  int    // ids at their last generation, never reused
	inflight int    // Sets reserving in p
	stalled  int    // of those, Sets waiting in roomInPool: they hold no space in p
	oldPool  bool   // a rebuild replaced the store: close p once inflight is 0
}

// newStore makes a store of up to maxEntries entries in pool p, its policy
// sized for budget.
func newStore(p *pool.Pool, maxEntries uint64, budget int64, name string) (*store, error) {
	s := &store{p: p, freeID: noID, pol: new(policy), epoch: 1}
	var err error
	if s.base, err = poolBase(p); err == nil {
		err = s.ents.reserve(maxEntries, name)
	}
	if err == nil {
		err = s.refs.reserve(maxEntries, name+" refs")
	}
	if err == nil {
		err = s.idx.init(maxEntries, name+" index")
	}
	if err == nil {
		if err = s.pol.init(budget, uint32(maxEntries)); err != nil {
			s.pol = nil
		}
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close unmaps the store's tables at once, after a failed New or rebuild.
func (s *store) close() {
	for _, t := range []interface{ close() }{&s.ents, &s.refs, &s.idx.halves[0], &s.idx.halves[1]} {
		t.close()
	}
	if s.pol != nil {
		s.pol.free()
	}
}

// retire gives the store's memory back now: its tables are unmapped once
// no reader holds the store (at once in the checked build, whose readers
// take the cache's lock), and its policy is freed now. Readers tell the
// policy of a hit or miss only in a pinned section that first checks the
// moves word (see Cache.hit), so the caller, which changed that word,
// waits for the sections in flight with proc.Quiesce first.
//
// The race detector cannot see the order proc.Quiesce gives (a stop of the
// world), so under it the policy is freed once the store is unreachable.
func (s *store) retire() {
	_ = vmem.Retire(s, s.ents.r, s.refs.r, s.idx.halves[0].r, s.idx.halves[1].r)
	if proc.Race {
		// Not the policy as the argument: it reaches s (its words are
		// s.ents), so s would never be unreachable and no cleanup of it
		// would run.
		runtime.AddCleanup(s, closeRegions, s.pol.regions())
		return
	}
	proc.Quiesce()
	s.pol.free()
}

// metaBytes returns the memory of the store's metadata in use: the entry
// tables up to the highest id used (they grow ahead of it), the index and
// the policy (a pool of its own counts its slot table apart). Callers hold
// the lock.
func (s *store) metaBytes() int {
	n := int(s.nextID)
	return pagesOf(n*sizeOf[entry]()) + pagesOf(n*8) + s.idx.bytes() + s.pol.bytes(s.nextID)
}

// entry returns entry id.
func (s *store) entry(id uint32) *entry { return s.ents.at(uint64(id)) }

// ref returns entry id's pool.Ref.
func (s *store) ref(id uint32) pool.Ref { return pool.Ref(*s.refs.at(uint64(id))) }

// newID pops a free entry id, or takes a fresh one, growing the tables.
// Callers hold the lock.
func (s *store) newID() (uint32, error) {
	if id := s.freeID; id != noID {
		s.freeID = uint32(s.entry(id).off)
		return id, nil
	}
	if uint64(s.nextID) >= s.ents.max {
		return 0, fmt.Errorf("%d entries: %w", s.nextID, ErrFull)
	}
	if err := s.ents.grow(uint64(s.nextID) + 1); err != nil {
		return 0, err
	}
	if err := s.refs.grow(uint64(s.nextID) + 1); err != nil {
		return 0, err
	}
	s.nextID++
	return s.nextID - 1, nil
}

// hasID reports whether newID has an id to give without growing past the
// entries reserved. Callers hold the lock.
func (s *store) hasID() bool { return s.freeID != noID || uint64(s.nextID) < s.ents.max }

// pushID puts entry id, whose word is already free, on the free stack; an
// id whose generation reached the last is retired, never reused, so a
// stale reader can never mistake a later occupant for the one it saw.
// Callers hold the lock.
func (s *store) pushID(id uint32) {
	e := s.entry(id)
	if genOf(e.word) == genMask {
		s.retired++
		return
	}
	fence.StoreRelease(&e.off, uint64(s.freeID))
	s.freeID = id
}

// closePoolIfDone closes the pool of a store a rebuild replaced, once the
// last Set that was reserving in it has let its reservation go. Callers
// hold the lock.
func (s *store) closePoolIfDone() {
	if s.oldPool && s.inflight == 0 {
		s.oldPool = false
		_ = s.p.Close()
	}
}

// releaseSegment gives entry id's segment back to the pool.
func (s *store) releaseSegment(id uint32) { releaseRef(s.p, s.ref(id)) }

// releaseRef drops the cache's latch on ref and releases it. Neither can
// fail for a segment the cache holds, but on a shared pool closed under the
// cache (a misuse) both report ErrClosed, which leaves nothing to free.
func releaseRef(p *pool.Pool, ref pool.Ref) {
	_ = p.Unlatch(ref)
	_ = p.Release(ref)
}
