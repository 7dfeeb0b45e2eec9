// The writers: Set and Delete, eviction, and the reclaimer a shared pool
// calls.

package cache

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/offheap/offheap/pool"
)

// Set stores a copy of value under key, replacing what key held; the entry
// is readable when Set returns. It never drops the write silently: if it
// stores nothing it says why, with ErrRejected (the admission policy judged
// the entry less worth keeping than what it would evict) or ErrFull
// (nothing unpinned left to evict; the budget is never overshot), and the
// key's old value, if any, is then gone too, so no stale value outlives a
// write; or with a typed error for a key or value it cannot take, changing
// nothing.
//
// Set first takes the old value out (a Get racing with it may miss), makes
// room by evicting, and copies the new value in without the lock. It
// allocates nothing.
func (c *Cache) Set(key, value []byte) error {
	if err := c.checkKey("set", key); err != nil {
		return err
	}
	n := uint64(len(key)) + uint64(len(value))
	weight := c.weight(n)
	if uint64(len(value)) > math.MaxUint32 || weight > min(c.maxBudget, c.poolMax) {
		return c.keyError("set", key, c.tooLarge(n))
	}
	h := c.hash(key)
	c.mu.Lock()
	err := c.makeRoom(key, h, weight)
	if err == nil {
		c.sets.Add(1) // Close waits for the Sets in flight
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	defer c.sets.Done()
	ref, b, err := c.reserve(int(n))
	if err != nil {
		c.mu.Lock()
		c.promised -= weight
		c.mu.Unlock()
		if errors.Is(err, pool.ErrClosed) {
			return c.keyError("set", key, ErrClosed)
		}
		return c.keyError("set", key, fmt.Errorf("%w: %w", ErrFull, err))
	}
	copy(b[copy(b, key):], value)
	c.mu.Lock()
	c.promised -= weight
	err = c.insert(key, h, ref, b, weight)
	c.mu.Unlock()
	return err
}

// tooLarge explains why an entry of n bytes does not fit.
func (c *Cache) tooLarge(n uint64) error {
	return fmt.Errorf("entry of %d bytes: %w", n, ErrTooLarge)
}

// makeRoom is Set's first step: it removes the key's old entry, asks the
// policy to admit the new one, and evicts until weight more bytes fit the
// budget, then promises them to the Set. Callers hold the lock.
func (c *Cache) makeRoom(key []byte, h uint64, weight int64) error {
	switch {
	case c.closed:
		return c.keyError("set", key, ErrClosed)
	case weight > c.budget:
		return c.keyError("set", key, c.tooLarge(uint64(weight)))
	}
	if id, _, _, _, f := c.find(h, key); f == foundYes {
		c.remove(id, h)
	}
	if !c.pol.admit(h, weight) {
		c.st.rejections++
		return ErrRejected
	}
	for c.used+c.gone+c.promised+weight > c.budget {
		if _, ok := c.evictOne(); !ok {
			return c.keyError("set", key, c.fullError(weight))
		}
	}
	c.promised += weight
	return nil
}

func (c *Cache) fullError(weight int64) error {
	return fmt.Errorf("%d bytes wanted, %d of %d pinned or promised: %w", weight, c.used+c.gone+c.promised, c.budget, ErrFull)
}

// reserve places n bytes in the pool, latched (the cache holds it so until
// the entry leaves). On its own pool the cache has made room already, and
// a reservation fails only where the free space is in pieces too small:
// it then evicts more, without asking the pool to compact (which cannot
// move the latched entries) or grow past the budget. On a shared pool the
// pool's own slow path runs, asking its reclaimers (this cache among
// them) for room; mu is not held, so that cannot deadlock.
func (c *Cache) reserve(n int) (pool.Ref, []byte, error) {
	if !c.owned {
		return c.p.Reserve(n)
	}
	for {
		ref, b, err := c.p.TryReserve(n)
		if err == nil || !errors.Is(err, pool.ErrFull) {
			return ref, b, err
		}
		c.mu.Lock()
		ok := false
		if !c.closed {
			_, ok = c.evictOne()
		}
		c.mu.Unlock()
		if !ok {
			return 0, nil, err
		}
	}
}

// insert is Set's last step: the segment ref, view b, holds key and its
// value; it becomes the key's entry, replacing the old one. Callers hold
// the lock.
func (c *Cache) insert(key []byte, h uint64, ref pool.Ref, b []byte, weight int64) error {
	if c.closed {
		c.releaseRef(ref)
		return c.keyError("set", key, ErrClosed)
	}
	old, _, _, _, f := c.find(h, key)
	var err error
	if f == foundYes {
		c.detach(old)
	}
	for err == nil && c.used+c.gone+c.promised+weight > c.budget {
		if _, ok := c.evictOne(); !ok {
			err = c.fullError(weight)
		}
	}
	id, ok := uint32(0), false
	if err == nil {
		if id, ok = c.newID(); !ok {
			err = fmt.Errorf("%d entries: %w", c.nextID, ErrFull)
		}
	}
	if err == nil {
		err = c.publish(id, h, ref, b, uint64(len(key)), weight, f == foundYes, old)
	}
	if err != nil {
		if f == foundYes {
			c.unindex(old, h)
		}
		c.releaseRef(ref)
		return c.keyError("set", key, err)
	}
	c.st.sets++
	c.checkAfterMutation()
	return nil
}

// publish fills entry id and makes it the key's: in place of old's index
// slot if replacing, else in a new one. Callers hold the lock.
func (c *Cache) publish(id uint32, h uint64, ref pool.Ref, b []byte, klen uint64, weight int64, replacing bool, old uint32) error {
	e, off := c.entryAt(id), c.offsetOf(b)
	if end := off + uint64(len(b)); end > c.hi.Load() {
		c.hi.Store(end) // before the entry is seen: readers bound offsets by it
	}
	atomic.StoreUint64(&e.hash, h)
	atomic.StoreUint64(&e.off, off)
	atomic.StoreUint64(&e.lens, klen|(uint64(len(b))-klen)<<32)
	*c.refs.at(uint64(id)) = uint64(ref)
	atomic.StoreUint64(&e.word, uint64(genOf(e.word))|liveBits)
	if replacing {
		c.idx.replace(h, old, id)
		c.finishDetach(old)
	} else if err := c.idx.insert(c, h, id); err != nil {
		atomic.StoreUint64(&e.word, freedWord(e.word))
		c.pushID(id)
		return err
	}
	c.pol.add(id, h, weight)
	c.used += weight
	c.count.Add(1)
	return nil
}

// Delete removes key and reports whether the cache held it. A pinned entry
// stays readable through its handles until the last is released.
func (c *Cache) Delete(key []byte) (bool, error) {
	if err := c.checkKey("delete", key); err != nil {
		return false, err
	}
	h := c.hash(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, c.keyError("delete", key, ErrClosed)
	}
	id, _, _, _, f := c.find(h, key)
	if f != foundYes {
		return false, nil
	}
	c.remove(id, h)
	c.st.deletes++
	c.checkAfterMutation()
	return true, nil
}

// remove takes live entry id, of hash h, out of the cache. Callers hold the lock.
func (c *Cache) remove(id uint32, h uint64) {
	c.detach(id)
	c.unindex(id, h)
}

// unindex removes detached entry id from the index and, if it was freed,
// recycles its id. Callers hold the lock.
func (c *Cache) unindex(id uint32, h uint64) {
	c.idx.remove(h, id)
	c.finishDetach(id)
}

// finishDetach recycles the id of a detached entry that was freed, once
// the index no longer names it.
func (c *Cache) finishDetach(id uint32) {
	if stateOf(c.entryAt(id).word) == stateFree {
		c.pushID(id)
	}
}

// detach takes live entry id out of the policy and the count, and frees it,
// or, if pinned, marks it gone: freed at its last release, and counted in
// the budget until then. Its index slot stays; the caller changes it and
// then calls finishDetach. Callers hold the lock.
func (c *Cache) detach(id uint32) {
	e := c.entryAt(id)
	weight := c.weight(keyLen(e.lens) + valLen(e.lens))
	c.pol.remove(id)
	c.used -= weight
	c.count.Add(-1)
	for {
		w := e.loadWord()
		if pinsOf(w) == 0 {
			if e.casWord(w, freedWord(w)) {
				c.releaseSegment(id)
				return
			}
			continue
		}
		if e.casWord(w, w&^(stateMask|parkedBit)|goneBits) {
			c.gone += weight
			return
		}
	}
}

// evictOne evicts the policy's victim, which has no pins, and returns its
// weight; ok is false if every entry left is pinned. Callers hold the lock.
func (c *Cache) evictOne() (weight int64, ok bool) {
	for {
		id, ok := c.pol.victim(c.isPinned)
		if !ok {
			return 0, false
		}
		e := c.entryAt(id)
		weight = c.weight(keyLen(e.lens) + valLen(e.lens))
		w := e.loadWord()
		if pinsOf(w) > 0 || !e.casWord(w, freedWord(w)) {
			// Pinned after the policy asked: back in line, as if new.
			c.pol.remove(id)
			c.pol.add(id, e.hash, weight)
			continue
		}
		c.pol.remove(id)
		c.used -= weight
		c.count.Add(-1)
		c.st.evictions++
		c.idx.remove(e.hash, id)
		c.releaseSegment(id)
		c.pushID(id)
		return weight, true
	}
}

// freeEntry frees gone entry id, whose last pin was just dropped. Callers
// hold the lock.
func (c *Cache) freeEntry(id uint32) {
	e := c.entryAt(id)
	atomic.StoreUint64(&e.word, freedWord(e.word))
	c.releaseSegment(id)
	c.pushID(id)
}

// releaseSegment gives entry id's segment back to the pool.
func (c *Cache) releaseSegment(id uint32) { c.releaseRef(pool.Ref(*c.refs.at(uint64(id)))) }

// releaseRef drops the cache's latch on ref and releases it. Neither can
// fail for a segment the cache holds, but on a shared pool closed under the
// cache (a misuse) both report ErrClosed, which leaves nothing to free.
func (c *Cache) releaseRef(ref pool.Ref) {
	_ = c.p.Unlatch(ref)
	_ = c.p.Release(ref)
}

// reclaimer is the cache as a pool.Reclaimer of a shared pool.
type reclaimer struct{ c *Cache }

// Reclaim evicts unpinned entries, the policy's victims first, until need
// bytes are freed or none is left, and returns the bytes freed.
func (r *reclaimer) Reclaim(need int) int {
	c := r.c
	c.mu.Lock()
	defer c.mu.Unlock()
	freed := int64(0)
	for !c.closed && freed < int64(need) {
		w, ok := c.evictOne()
		if !ok {
			break
		}
		freed += w
	}
	if freed > 0 {
		c.checkAfterMutation()
	}
	return int(freed)
}
