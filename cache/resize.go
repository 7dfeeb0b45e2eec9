// Resize: the budget at run time, and how a shrunk cache with a pool of its
// own gives its memory back to the operating system: a rebuild into fresh
// memory, or, with pins out, a compaction in place.

package cache

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
)

// Resize sets the budget to n bytes, at most MaxBudget. Shrinking evicts,
// the policy's victims first, until the entries fit. A cache with a pool of
// its own then gives the memory back to the operating system at once: with
// no pins out it moves the entries into a fresh pool, entry table, index
// and policy (in the old policy's order) and lets the old memory go, so
// all of it shrinks with the entries; with pins out it moves the unpinned
// entries together in place and shrinks the pool and the index. Readers
// wait while entries move. A cache on a shared pool only evicts: the pool's
// pages are its owner's. Sets in flight whose bytes would not fit n are
// waited for (new Sets wait meanwhile), then evicted if need be; but not
// Sets asking a full shared pool for room, whose reclaimers may be what
// called Resize. If pinned entries alone (or with those Sets) exceed n,
// Resize evicts what it can and returns ErrFull, keeping the old budget.
func (c *Cache) Resize(n int) error {
	switch {
	case n <= 0:
		return c.sizeError("resize", "to", n, ErrInvalid)
	case int64(n) > c.maxBudget:
		return c.sizeError("resize", "to", n, fmt.Errorf("MaxBudget is %d: %w", c.maxBudget, ErrTooLarge))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.sizeError("resize", "to", n, ErrClosed)
	}
	b := int64(n)
	if err := c.evictTo(b); err != nil {
		c.checkAfterMutation()
		return c.sizeError("resize", "to", n, err)
	}
	if c.owned {
		if p := c.cur().p; b < c.budget {
			c.shrink(b)
		} else if b > int64(p.Stats().Capacity) { // a shrink that pins cut short may have left more
			if err := p.Resize(n); err != nil {
				return c.sizeError("resize", "to", n, err)
			}
		}
	}
	c.budget = b
	c.cur().pol.setBudget(b)
	c.checkAfterMutation()
	return nil
}

// evictTo evicts until the entries and the Sets' promises fit b bytes. It
// waits for Sets in flight whose promises alone stand in the way (they end
// in finite time; new Sets wait meanwhile), so that only pinned entries
// make it fail, with ErrFull; or Sets in a full shared pool's slow path,
// whose reclaimers may be waiting for this Resize (see sharedReserve).
// Callers hold the lock, which the wait drops.
func (c *Cache) evictTo(b int64) error {
	waiting := false
	defer func() {
		if waiting {
			c.shrinking--
			c.settled.Broadcast() // the Sets that waited for it
		}
	}()
	for c.used+c.gone+c.promised > b {
		if _, ok := c.evictOne(); ok {
			continue
		}
		if c.promised == c.reclaiming { // none, or only Sets that may be waiting for this Resize
			return fmt.Errorf("%d bytes pinned, %d promised to Sets asking a full pool for room: %w", c.used+c.gone, c.promised, ErrFull)
		}
		if !waiting {
			waiting = true
			c.shrinking++
		}
		c.settled.Wait()
		if c.closed { // Close ran meanwhile, and may have freed the store
			return ErrClosed
		}
	}
	return nil
}

// shrink gives back the memory of a cache with its own pool whose entries
// now fit b: by a rebuild if no pins are out, else by compacting in place.
// Readers wait meanwhile, and a pin taken meanwhile is undone (see Pin).
// Callers hold the lock.
func (c *Cache) shrink(b int64) {
	atomic.AddUint64(&c.moves, 1)
	defer atomic.AddUint64(&c.moves, 1)
	c.promoteAll() // hazard pins taken before the moves word changed
	if c.gone == 0 && c.pinnedEntries() == 0 && c.rebuild(b) == nil {
		c.ops.rebuilds++
		return
	}
	s := c.cur()
	c.compact(s, func() { _ = s.p.Resize(int(b)) }) // latched entries past b keep the pool larger: not an error
	if _, n := s.idx.table(s.idx.hdr.Load()); n > bucketsFor(4*s.idx.live) {
		_ = s.idx.rehash(s, s.idx.live)
	}
	c.ops.compactions++
}

// rebuild moves every entry of the current store, which has no pins, into
// a new store with a fresh pool of b bytes, and retires the old one: its
// tables' memory goes back at once (they are unmapped once no reader holds
// them), and its pool is closed once no Set is reserving in it. It fails,
// changing nothing, if the memory for the new store cannot be had.
// Callers hold the lock, with the moves word odd.
func (c *Cache) rebuild(b int64) error {
	old := c.cur()
	p, err := c.newPool(b)
	if err != nil {
		return err
	}
	ns, err := newStore(p, c.maxEntries, b, c.label)
	if err == nil {
		err = ns.prepare(old.idx.live)
	}
	if err != nil {
		if ns != nil {
			ns.close()
		}
		_ = p.Close()
		return err
	}
	never := func(uint32) bool { return false }
	for {
		id, ok := old.pol.victim(never) // least worth keeping first, so the new policy sees the same order
		if !ok {
			break
		}
		old.pol.remove(id)
		if err := c.moveEntry(old, ns, id); err != nil {
			return errors.Join(err, c.abandon(old, ns, id)) // cannot happen: ns was prepared
		}
	}
	c.switchTo(old, ns)
	return nil
}

// prepare makes room in a new store for n entries: its tables ready, its
// index sized, so moving them in cannot fail.
func (s *store) prepare(n uint64) error {
	if err := s.ents.grow(max(n, 1)); err != nil {
		return err
	}
	if err := s.refs.grow(max(n, 1)); err != nil {
		return err
	}
	return s.idx.rehash(s, n)
}

// moveEntry copies live entry id of old into ns, as a new entry added to
// ns's policy, and frees it in old. Callers hold the lock.
func (c *Cache) moveEntry(old, ns *store, id uint32) error {
	e := old.entry(id)
	klen, n := keyLen(e.lens), keyLen(e.lens)+valLen(e.lens)
	ref, b, err := ns.p.TryReserve(int(n))
	if err != nil {
		return err
	}
	copy(b, old.view(e.off, n))
	nid, err := ns.newID()
	if err != nil {
		releaseRef(ns.p, ref)
		return err
	}
	loc := ns.place(nid, e.hash, ref, b, klen)
	if err := ns.idx.insert(ns, e.hash, nid, loc); err != nil {
		return err
	}
	ns.pol.add(nid, e.hash, c.weight(n))
	c.freeMoved(e, c.weight(n))
	old.releaseSegment(id)
	return nil
}

// freeMoved frees entry e of a store being rebuilt, of weight bytes. It has
// no pins but those readers took after the rebuild began, which they are
// undoing; the free takes them, so it counts the bytes unpinned, as their
// last drop would have (see dropPin).
func (c *Cache) freeMoved(e *entry, weight int64) {
	for {
		w := e.loadWord()
		if e.casWord(w, freedWord(w)) {
			if pinsOf(w) > 0 {
				c.addPinned(-weight)
			}
			return
		}
	}
}

// abandon ends a rebuild that failed half way: what moved stays in ns, the
// rest (id and all the old policy still holds) is evicted, and ns becomes
// current. Callers hold the lock.
func (c *Cache) abandon(old, ns *store, id uint32) error {
	lost := []uint32{id}
	never := func(uint32) bool { return false }
	for {
		v, ok := old.pol.victim(never)
		if !ok {
			break
		}
		old.pol.remove(v)
		lost = append(lost, v)
	}
	for _, v := range lost {
		e := old.entry(v)
		c.used -= c.weight(keyLen(e.lens) + valLen(e.lens))
		c.addCount(-1)
		c.ops.evictions++
		atomic.StoreUint64(&e.word, freedWord(e.word))
		old.releaseSegment(v)
	}
	c.switchTo(old, ns)
	return fmt.Errorf("rebuild: %d entries evicted", len(lost))
}

// switchTo makes ns the current store and retires old. Callers hold the lock.
func (c *Cache) switchTo(old, ns *store) {
	ns.epoch = max(old.epoch+1, 1) // never 0, which marks a slot's Handle
	c.st.Store(ns)
	old.oldPool = true
	old.closePoolIfDone()
	old.retire()
}

// compact lets the pool move the entries of s: it marks every entry
// without pins moving and drops the cache's latch on it, runs move (which
// compacts the pool), and latches the entries again at their new offsets.
// Readers wait while the moves word is odd, and a pin taken meanwhile is
// undone (see Pin), so nobody reads an entry at an old offset. Callers hold
// the lock, with the moves word odd.
func (c *Cache) compact(s *store, move func()) {
	for id := range s.nextID {
		e := s.entry(id)
		if e.markMoving() {
			_ = s.p.Unlatch(s.ref(id))
		}
	}
	move()
	for id := range s.nextID {
		e := s.entry(id)
		if e.loadWord()&movingBit == 0 {
			continue
		}
		b, err := s.p.Latch(s.ref(id))
		if check.On {
			check.Invariant(err == nil, "%s: latch entry %d again after compaction: %v", c.label, id, err)
		}
		loc := uint64(0) // readers go by the entry
		if err == nil {
			atomic.StoreUint64(&e.off, s.offsetOf(b))
			loc = locOf(e.off, keyLen(e.lens), valLen(e.lens))
		}
		s.idx.relocate(e.hash, id, loc)
		for {
			w := e.loadWord()
			if e.casWord(w, w&^movingBit) {
				break
			}
		}
	}
}
