// The writers: Set and Delete, eviction, and the reclaimer a shared pool
// calls.

package cache

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/offheap/offheap/internal/fence"
	"github.com/offheap/offheap/pool"
)

// Set stores a copy of value under key, replacing what key held; the entry
// is readable when Set returns. It never drops the write silently: if it
// stores nothing it says why, with ErrRejected (the admission policy judged
// the entry less worth keeping than what it would evict) or ErrFull
// (nothing unpinned left to evict; the budget is never overshot), and the
// key's old value, if any, is then gone too, so no stale value outlives a
// write; or with a typed error for a key or value it cannot take, changing
// nothing. (A value that fitted the budget but no longer fits the one a
// Resize set while the Set waited for room is ErrTooLarge too, and then, as
// with ErrFull, the old value is gone.)
//
// A new value of the old one's length, for an unpinned entry of at most
// 1 KiB, is copied over it in place (unless a Resize is shrinking the cache
// meanwhile, or the entry's generations are all but spent): a Get racing
// with it sees the old value or the new one, and the entry keeps its place
// in the eviction order, as after a hit. Otherwise Set first takes the old
// value out (a Get racing with it may miss), makes room by evicting, and
// copies the new value in: under the lock if key and value take at most
// 1 KiB and the pool places them at once, else without it. It allocates
// nothing.
func (c *Cache) Set(key, value []byte) error {
	if err := c.checkKey("set", key); err != nil {
		return err
	}
	c.loads.supersede(key)
	return c.set(key, value, nil)
}

// set is Set for a key already checked. f is the load whose value this
// stores, or nil for a caller's Set. A load began on a miss, so it stores
// its value only where the key is still missing, and not if superseded
// meanwhile (see loader.supersede): its value, read before, must not
// replace a Set's or undo a Delete.
func (c *Cache) set(key, value []byte, f *flight) error {
	n := uint64(len(key)) + uint64(len(value))
	weight := c.weight(n)
	if uint64(len(value)) > math.MaxUint32 || weight > min(c.maxBudget, c.poolMax) {
		return c.keyError("set", key, c.tooLarge(n, weight))
	}
	h := c.hash(key)
	for {
		st, ab, err, done := c.beginSet(key, value, h, weight, f, n <= lockedCopyMax)
		if done {
			return err
		}
		err, again := c.setIn(st, key, value, h, weight, f, ab)
		c.sets.Done()
		if !again {
			return err
		}
	}
}

// rewrite is Set's fast path for a key the cache holds, unpinned, with a
// value of the same length: it overwrites the value in place and reports
// whether it did. Meanwhile the key's bucket's sequence number is odd, so
// Get's fast path, which validates by it, retries; and the entry's word
// says busy, so every other reader, which validates by the word, retries,
// and no pin can be taken (a pin's CAS expects the live word it read).
// The word then comes back live with the next generation, so a reader that
// read the old word before the overwrite and validates after it sees a
// new occupant. Nothing moves, so the index and the pool are untouched,
// and the entry keeps its place in the policy: the Set counts as a use.
// A pinned entry keeps its old value for its pins (see Set), so it goes
// the long way. Callers hold the lock.
func (c *Cache) rewrite(key, value []byte, h uint64) bool {
	if c.closed || c.shrinking > 0 {
		return false
	}
	st := c.cur()
	id, w, off, lens, f := st.find(h, key)
	if f != foundYes || valLen(lens) != uint64(len(value)) || !rewritable(w) {
		return false
	}
	e := st.entry(id)
	c.guard(st, id, h)
	defer c.unguard(h)
	if !e.casWord(w, w&^stateMask|busyBits) {
		return false // a pin came, or guard promoted a hazard pin
	}
	bk, _, _ := st.idx.slotFor(h, id)
	seq := beginWrite(bk)
	copy(st.view(off+keyLen(lens), valLen(lens)), value)
	endWrite(bk, seq)
	fence.StoreRelease(&e.word, uint64(genOf(w)+1)|liveBits)
	st.pol.hit(id, h)
	c.ops.sets++
	c.checkAfterMutation()
	return true
}

// rewritable reports whether an entry with word w may be rewritten in
// place: no pins (so no own handle), not parked or moving, and a generation
// that may still be raised (never to the last: only freeing gives it, see
// pushID).
func rewritable(w uint64) bool {
	return pinsOf(w) == 0 && w&(parkedBit|movingBit|ownBit) == 0 && genOf(w) < genMask-1
}

// lockedCopyMax is the longest entry a Set copies under the lock: copying
// it there costs less than taking the lock a second time.
const lockedCopyMax = 1 << 10

// beginSet is a Set's first step, under the lock: makeRoom, then, if whole
// (an entry of at most lockedCopyMax bytes) and the pool places the entry
// at once, the rest of the Set (done is true, and err is its outcome).
// Otherwise the Set is counted in flight in the store it will reserve in,
// which it returns, for setIn to finish without the lock.
func (c *Cache) beginSet(key, value []byte, h uint64, weight int64, f *flight, whole bool) (st *store, ab absent, err error, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if whole && f == nil && c.rewrite(key, value, h) {
		return nil, absent{}, nil, true
	}
	if ab, err = c.makeRoom(key, h, weight, f); err != nil {
		return nil, absent{}, err, true
	}
	st = c.cur() // after makeRoom, which may wait while a rebuild replaces it
	if whole {
		// No wait since makeRoom promised the bytes, so nobody saw the
		// promise: it ends without a word to settled's waiters.
		if ref, b, err := st.p.TryReserve(len(key) + len(value)); err == nil {
			c.promised -= weight
			copy(b[copy(b, key):], value)
			return st, ab, c.insert(st, key, h, ref, b, weight, f, ab), true
		}
	}
	c.sets.Add(1) // Close waits for the Sets in flight
	st.inflight++ // and a retired store's pool for those in it
	return st, ab, nil, false
}

// setIn is the rest of a Set whose room is promised in store st: it
// reserves and copies without the lock, then inserts. If a rebuild
// replaced st meanwhile, the reservation is let go and again says to start
// over in the new store.
func (c *Cache) setIn(st *store, key, value []byte, h uint64, weight int64, f *flight, ab absent) (err error, again bool) {
	ref, b, slow, err := c.reserve(st, len(key)+len(value), weight)
	if err == nil {
		copy(b[copy(b, key):], value)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.promised -= weight
	if slow {
		c.reclaiming -= weight
	}
	c.settled.Broadcast() // a Resize may be waiting for it
	st.inflight--
	if st != c.cur() {
		if err == nil {
			releaseRef(st.p, ref)
		}
		st.closePoolIfDone()
		if c.closed { // nothing was stored: say so, not nil
			return c.keyError("set", key, ErrClosed), false
		}
		return nil, true
	}
	switch {
	case err == nil:
		return c.insert(st, key, h, ref, b, weight, f, ab), false
	case c.closed, errors.Is(err, pool.ErrClosed):
		// Closed while it reserved: a reservation that failed meanwhile
		// stopped making room (see roomInPool), so ErrFull would blame pins.
		return c.keyError("set", key, ErrClosed), false
	}
	return c.keyError("set", key, fmt.Errorf("%w: %w", ErrFull, err)), false
}

// tooLarge explains why an entry of n bytes, weight in the pool, does not fit.
func (c *Cache) tooLarge(n uint64, weight int64) error {
	if uint64(weight) != n {
		return fmt.Errorf("entry of %d bytes (%d in the pool): %w", n, weight, ErrTooLarge)
	}
	return fmt.Errorf("entry of %d bytes: %w", n, ErrTooLarge)
}

// absent is what a Set knows after makeRoom: its key is not in the index
// of st while st.idx.adds is adds.
type absent struct {
	st   *store
	adds uint64
}

// makeRoom is Set's first step: it removes the key's old entry, asks the
// policy to admit the new one, and evicts until weight more bytes fit the
// budget, then promises them to the Set, and says where the key is absent. Where the bytes of other Sets in
// flight stand in the way, it waits for them (their entries may then be
// evicted), as it does while a Resize waits for them: only pinned entries
// make it fail with ErrFull. Callers hold the lock, which a wait drops, so
// the current store may change.
func (c *Cache) makeRoom(key []byte, h uint64, weight int64, ld *flight) (absent, error) {
	for c.shrinking > 0 && !c.closed {
		c.settled.Wait() // a Resize waits for the promises made: make none
	}
	switch {
	case c.closed:
		return absent{}, c.keyError("set", key, ErrClosed)
	case weight > c.budget:
		return absent{}, c.keyError("set", key, c.tooLarge(uint64(weight), weight))
	}
	st := c.cur()
	id, _, _, _, f := st.find(h, key)
	if ld.outdated(f == foundYes) {
		return absent{}, errSuperseded
	}
	if f == foundYes {
		c.remove(st, id, h)
	}
	ab := absent{st, st.idx.adds}
	if !st.pol.admit(h, weight) {
		c.ops.rejections++
		return absent{}, ErrRejected
	}
	for c.used+c.gone+c.promised+weight > c.budget {
		if _, ok := c.evictOne(); ok {
			continue
		}
		if c.promised == 0 {
			return absent{}, c.keyError("set", key, c.fullError(weight))
		}
		c.settled.Wait()
		switch {
		case c.closed:
			return absent{}, c.keyError("set", key, ErrClosed)
		case weight > c.budget: // a Resize ran meanwhile
			return absent{}, c.keyError("set", key, c.tooLarge(uint64(weight), weight))
		}
	}
	c.promised += weight
	return ab, nil
}

func (c *Cache) fullError(weight int64) error {
	return fmt.Errorf("%d bytes wanted, %d of %d pinned or promised: %w", weight, c.used+c.gone+c.promised, c.budget, ErrFull)
}

// reserve places n bytes in st's pool, latched (the cache holds it so until
// the entry leaves). On its own pool the cache has made room already, and
// a reservation fails only where the free space is in pieces too small:
// it then evicts more, or waits for the Sets in flight (see roomInPool),
// without asking the pool to compact (which cannot move the latched
// entries) or grow past the budget. On a shared pool the
// pool's own slow path runs, asking its reclaimers (this cache among
// them) for room; mu is not held, so that cannot deadlock. slow says the
// Set's weight was counted reclaiming meanwhile (see sharedReserve).
func (c *Cache) reserve(st *store, n int, weight int64) (ref pool.Ref, b []byte, slow bool, err error) {
	for {
		ref, b, err := st.p.TryReserve(n)
		if err == nil || !errors.Is(err, pool.ErrFull) {
			return ref, b, false, err
		}
		if !c.owned {
			return c.sharedReserve(st, n, weight)
		}
		c.mu.Lock()
		retry := c.roomInPool(st)
		if !retry && st == c.cur() && !c.closed {
			// No other Set reserves in st's pool now (see roomInPool), and
			// the try above may have failed before entries left it: a try
			// under the lock has the last word, so ErrFull means pins.
			ref, b, err = st.p.TryReserve(n)
		}
		c.mu.Unlock()
		if !retry {
			return ref, b, false, err
		}
	}
}

// sharedReserve is reserve on a shared pool that had no room at once: the
// pool's slow path runs its reclaimers on this goroutine, and a reclaimer
// may be code that waits for this cache (one that Resizes it, say): a
// Resize must not wait for this Set then, as it waits for Sets in flight,
// or each would wait for the other. So the Set's weight is counted
// reclaiming meanwhile, and evictTo does not wait for it.
func (c *Cache) sharedReserve(st *store, n int, weight int64) (pool.Ref, []byte, bool, error) {
	c.mu.Lock()
	c.reclaiming += weight
	c.settled.Broadcast() // a Resize waiting for this Set waits no more
	c.mu.Unlock()
	ref, b, err := st.p.Reserve(n)
	return ref, b, true, err
}

// roomInPool makes room in st's own pool for a reservation that found the
// free space in pieces too small: it evicts an entry or, with none left
// unpinned, waits for a Set in flight that may hold space in the pool (its
// reservation may be what splits the free space; it ends in finite time,
// as pinned entries need not) and reports whether to try again. A Set
// waiting here holds no space, so it waits only while another Set in flight
// is not waiting too: the last to come fails with ErrFull (everything else
// is pinned), and its end wakes the rest. Callers hold the lock, which the
// wait drops.
func (c *Cache) roomInPool(st *store) bool {
	if c.closed || st != c.cur() {
		return false
	}
	if _, ok := c.evictOne(); ok {
		return true
	}
	if st.inflight-st.stalled <= 1 {
		return false
	}
	st.stalled++
	c.settled.Wait()
	st.stalled--
	return true
}

// insert is Set's last step: the segment ref, view b, holds key and its
// value; it becomes the key's entry, replacing the old one (another Set's),
// unless it is the value of load ld, superseded meanwhile. Callers hold the
// lock.
func (c *Cache) insert(st *store, key []byte, h uint64, ref pool.Ref, b []byte, weight int64, ld *flight, ab absent) error {
	if c.closed {
		releaseRef(st.p, ref)
		return c.keyError("set", key, ErrClosed)
	}
	old, f := uint32(0), foundNo
	if ab.st != st || ab.adds != st.idx.adds { // a Set may have stored the key meanwhile
		old, _, _, _, f = st.find(h, key)
	}
	if ld.outdated(f == foundYes) { // superseded, or a Set stored the key while this was copied in
		releaseRef(st.p, ref)
		return errSuperseded
	}
	var err error
	if f == foundYes {
		c.detach(st, old)
	}
	for err == nil && c.used+c.gone+c.promised+weight > c.budget {
		if _, ok := c.evictOne(); !ok {
			err = c.fullError(weight)
		}
	}
	for err == nil && !st.hasID() {
		// At MaxEntries: an entry makes way, as bytes do above.
		if _, ok := c.evictOne(); !ok {
			err = fmt.Errorf("%d entries, the most the cache holds, pinned: %w", st.nextID-uint32(st.retired), ErrFull)
		}
	}
	var id uint32
	if err == nil {
		id, err = st.newID()
	}
	if err == nil {
		err = c.publish(st, id, h, ref, b, uint64(len(key)), weight, f == foundYes, old)
	}
	if err != nil {
		if f == foundYes {
			st.unindex(old, h)
		}
		releaseRef(st.p, ref)
		return c.keyError("set", key, err)
	}
	c.ops.sets++
	c.checkAfterMutation()
	return nil
}

// publish fills entry id of st and makes it the key's: in place of old's
// index slot if replacing, else in a new one. Callers hold the lock.
func (c *Cache) publish(st *store, id uint32, h uint64, ref pool.Ref, b []byte, klen uint64, weight int64, replacing bool, old uint32) error {
	loc := st.place(id, h, ref, b, klen)
	if replacing {
		st.idx.replace(h, old, id, loc)
		st.finishDetach(old)
	} else if err := st.idx.insert(st, h, id, loc); err != nil {
		e := st.entry(id)
		atomic.StoreUint64(&e.word, freedWord(e.word))
		st.pushID(id)
		return err
	}
	st.pol.add(id, h, weight)
	c.used += weight
	c.addCount(1)
	return nil
}

// place fills entry id, free, with the segment ref, view b, that holds a
// key of klen bytes and its value, marks it live, and returns its location
// for the index. Callers hold the lock.
func (s *store) place(id uint32, h uint64, ref pool.Ref, b []byte, klen uint64) (loc uint64) {
	e, off := s.entry(id), s.offsetOf(b)
	if end := off + uint64(len(b)); end > s.hi.Load() {
		s.hi.Store(end) // before the entry is seen: readers bound offsets by it
	}
	fence.StoreRelease(&e.hash, h)
	fence.StoreRelease(&e.off, off)
	fence.StoreRelease(&e.lens, klen|(uint64(len(b))-klen)<<32)
	*s.refs.at(uint64(id)) = uint64(ref)
	fence.StoreRelease(&e.word, uint64(genOf(e.word))|liveBits)
	return locOf(off, klen, uint64(len(b))-klen)
}

// Delete removes key and reports whether the cache held it. A pinned entry
// stays readable through its handles until the last is released.
func (c *Cache) Delete(key []byte) (bool, error) {
	if err := c.checkKey("delete", key); err != nil {
		return false, err
	}
	c.loads.supersede(key)
	h := c.hash(key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, c.keyError("delete", key, ErrClosed)
	}
	st := c.cur()
	id, _, _, _, f := st.find(h, key)
	if f != foundYes {
		return false, nil
	}
	c.remove(st, id, h)
	c.ops.deletes++
	c.checkAfterMutation()
	return true, nil
}

// remove takes live entry id of st, of hash h, out of the cache. Callers
// hold the lock.
func (c *Cache) remove(st *store, id uint32, h uint64) {
	c.detach(st, id)
	st.unindex(id, h)
}

// unindex removes detached entry id from the index and, if it was freed,
// recycles its id. Callers hold the lock.
func (s *store) unindex(id uint32, h uint64) {
	s.idx.remove(h, id)
	s.finishDetach(id)
}

// finishDetach recycles the id of a detached entry that was freed, once
// the index no longer names it.
func (s *store) finishDetach(id uint32) {
	if stateOf(s.entry(id).word) == stateFree {
		s.pushID(id)
	}
}

// detach takes live entry id of st out of the policy and the count, and
// frees it, or, if pinned, marks it gone: freed at its last release, and
// counted in the budget until then. Its index slot stays, without a
// location (readers that go by it must not find a freed segment); the
// caller changes it and then calls finishDetach. Callers hold the lock.
func (c *Cache) detach(st *store, id uint32) {
	e := st.entry(id)
	weight := c.weight(keyLen(e.lens) + valLen(e.lens))
	c.guard(st, id, e.hash)
	defer c.unguard(e.hash)
	st.idx.relocate(e.hash, id, 0)
	st.pol.remove(id)
	c.used -= weight
	c.addCount(-1)
	for {
		w := e.loadWord()
		if pinsOf(w) == 0 {
			if e.casWord(w, freedWord(w)) {
				st.releaseSegment(id)
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
	st := c.cur()
	for {
		id, ok := st.pol.victim(c.isPinned)
		if !ok {
			return 0, false
		}
		e := st.entry(id)
		weight = c.weight(keyLen(e.lens) + valLen(e.lens))
		c.guard(st, id, e.hash)
		w := e.loadWord()
		for pinsOf(w) == 0 && !e.casWord(w, freedWord(w)) {
			w = e.loadWord() // a pin came and went: still the victim
		}
		if pinsOf(w) > 0 {
			// Pinned after the policy asked: back in line, as if new.
			c.unguard(e.hash)
			st.pol.remove(id)
			st.pol.add(id, e.hash, weight)
			continue
		}
		st.pol.remove(id)
		c.used -= weight
		c.addCount(-1)
		c.ops.evictions++
		st.idx.remove(e.hash, id) // before the segment is freed: see index
		c.unguard(e.hash)
		st.releaseSegment(id)
		st.pushID(id)
		return weight, true
	}
}

// free frees gone entry id, whose last pin was just dropped. Callers hold
// the lock.
func (s *store) free(id uint32) {
	e := s.entry(id)
	atomic.StoreUint64(&e.word, freedWord(e.word))
	s.releaseSegment(id)
	s.pushID(id)
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
