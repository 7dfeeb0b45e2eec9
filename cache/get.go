// The readers: Get, Has and Pin, which take no lock, and the probe they share.

package cache

import (
	"runtime"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/fence"
)

const (
	// copyCheckMax is the longest value Get copies before checking that the
	// entry is still the one it found; longer ones are checked first, so a
	// racing writer never makes Get copy (and allocate) a length it did not
	// mean to.
	copyCheckMax = 4 << 10
	// optimisticTries is how often a reader retries a lookup a writer
	// interfered with before it takes the lock.
	optimisticTries = 8
)

// found is the outcome of a probe.
type found int

const (
	foundNo    found = iota // the key is not in the index (final)
	foundYes                // the key's entry, as of the word returned
	foundRetry              // a writer interfered: probe again
)

// Get appends the value stored under key to dst and returns the result and
// true, or dst and false if the cache does not hold key (or is closed, or
// key is one it never takes). It takes no lock and allocates nothing beyond
// what appending to dst needs. dst's spare capacity may hold key (say, a
// buffer reused for both).
func (c *Cache) Get(dst, key []byte) ([]byte, bool) {
	h := c.hash(key)
	if spareHolds(dst, key) {
		// The optimistic paths copy before they validate, and retry with
		// key after a failed validation: with the copy over key they would
		// look up what it overwrote key with. Under the lock the copy comes
		// last.
		return c.getLocked(dst, key, h)
	}
	if m := c.loadMoves(); !check.On && m&(movesActive|movesClosed) == 0 {
		// The common case: no interference, a slot with a location. The
		// reader goes from the slot to the key and value, validating with
		// the bucket's sequence number (see index), the table and the moves
		// word; anything else is for getSlow.
		st := c.cur()
		hdr := st.idx.hdr.Load()
		t, n := st.idx.table(hdr)
	probe:
		for b, left := home(h, n), n; left > 0; b, left = next(b, n), left-1 {
			bk := t.at(b)
			seq := loadSeq(bk)
			for j := range bucketSlots {
				k := loadKey(bk, j)
				if k == 0 {
					if st.idx.hdr.Load() != hdr || !c.miss(st, h, m) {
						break probe
					}
					return dst, false
				}
				if k>>32 != tagOf(h) || uint32(k) == 0 {
					continue
				}
				loc := loadLoc(bk, j)
				off, kl, vl := unloc(loc)
				if loc == 0 || seq&1 != 0 || kl != uint64(len(key)) || vl > copyCheckMax || off+kl+vl > st.hi.Load() ||
					!equal(key, st.view(off, kl)) {
					break probe
				}
				k0 := len(dst)
				dst = append(dst, st.view(off+kl, vl)...)
				fence.Load()
				if loadSeq(bk) == seq && st.idx.hdr.Load() == hdr && c.hit(st, idOf(k), h, m) {
					return dst, true
				}
				dst = dst[:k0]
				break probe
			}
		}
	}
	return c.getSlow(dst, key, h)
}

// peek is find for Pin's fast path: it goes from the slot to the key, as
// Get does, without the entry, and returns the bucket, its sequence number
// and the index header, which validate what it read (see pinHazard). It
// returns foundRetry at the first sign of anything but a plain hit or miss
// (a slot without a location, a writer at work, a tag shared by two keys),
// and leaves those to find.
func (s *store) peek(h uint64, key []byte) (p peeked, f found) {
	p.hdr = s.idx.hdr.Load()
	t, n := s.idx.table(p.hdr)
	for b, left := home(h, n), n; left > 0; b, left = next(b, n), left-1 {
		p.bk = t.at(b)
		p.seq = loadSeq(p.bk)
		for j := range bucketSlots {
			k := loadKey(p.bk, j)
			if k == 0 {
				if s.idx.hdr.Load() != p.hdr {
					return p, foundRetry
				}
				return p, foundNo
			}
			if k>>32 != tagOf(h) || uint32(k) == 0 {
				continue
			}
			loc := loadLoc(p.bk, j)
			off, kl, vl := unloc(loc)
			if loc == 0 || p.seq&1 != 0 || kl != uint64(len(key)) || off+kl+vl > s.hi.Load() || !equal(key, s.view(off, kl)) {
				return p, foundRetry
			}
			p.id, p.off, p.lens = idOf(k), off, kl|vl<<32
			return p, foundYes
		}
	}
	return p, foundRetry
}

// peeked is what peek found: the entry, where its key and value are, and
// what validates them.
type peeked struct {
	bk        *bucket
	seq, hdr  uint64
	id        uint32
	off, lens uint64
}

// getSlow is Get after interference, for a long value, and in the checked
// build: it retries a few times, then takes the read lock.
func (c *Cache) getSlow(dst, key []byte, h uint64) ([]byte, bool) {
	if check.On {
		return c.getLocked(dst, key, h)
	}
	for range optimisticTries {
		m, ok := c.readBegin()
		if !ok {
			return dst, false
		}
		st := c.cur()
		id, w, off, lens, f := st.find(h, key)
		switch f {
		case foundNo:
			if c.miss(st, h, m) {
				return dst, false
			}
		case foundYes:
			e, n := st.entry(id), valLen(lens)
			if n > copyCheckMax && !c.stable(e, w, m) {
				continue
			}
			k := len(dst)
			dst = append(dst, st.view(off+keyLen(lens), n)...)
			if c.stable(e, w, m) && c.hit(st, id, h, m) {
				return dst, true
			}
			dst = dst[:k]
		}
	}
	return c.getLocked(dst, key, h)
}

// getLocked is Get under the read lock: in the checked build, and after
// repeated interference.
func (c *Cache) getLocked(dst, key []byte, h uint64) ([]byte, bool) {
	return c.lookupLocked(dst, key, h, true)
}

// peek is Get under the read lock that counts neither a hit nor a miss
// and tells the policy nothing: GetOrLoad's second look for key, whose
// first, a Get, counted the lookup already.
func (c *Cache) peek(dst, key []byte) ([]byte, bool) {
	return c.lookupLocked(dst, key, c.hash(key), false)
}

// lookupLocked appends key's value to dst under the read lock; count says
// whether to count the hit or miss and tell the policy.
func (c *Cache) lookupLocked(dst, key []byte, h uint64, count bool) ([]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return dst, false
	}
	st, m := c.cur(), c.loadMoves() // steady under the lock
	id, _, off, lens, f := st.find(h, key)
	if f != foundYes {
		if count {
			c.miss(st, h, m)
		}
		return dst, false
	}
	if count {
		c.hit(st, id, h, m)
	}
	return append(dst, st.view(off+keyLen(lens), valLen(lens))...), true
}

// Has reports whether the cache holds key. It takes no lock, and counts
// neither a hit nor a miss.
func (c *Cache) Has(key []byte) bool {
	h := c.hash(key)
	if check.On {
		return c.hasLocked(key, h)
	}
	for range optimisticTries {
		m, ok := c.readBegin()
		if !ok {
			return false
		}
		st := c.cur()
		id, w, _, _, f := st.find(h, key)
		switch f {
		case foundNo:
			return false
		case foundYes:
			if c.stable(st.entry(id), w, m) {
				return true
			}
		}
	}
	return c.hasLocked(key, h)
}

// hasLocked is Has under the read lock.
func (c *Cache) hasLocked(key []byte, h uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return false
	}
	_, _, _, _, f := c.cur().find(h, key)
	return f == foundYes
}

// Pin returns a zero-copy view of the value stored under key and a Handle
// that keeps it: until the Handle is released the entry is neither evicted
// nor moved, and if it is deleted or replaced meanwhile the view still
// shows the old value, whose bytes are freed (and counted in the budget)
// until the last Handle on it is released. The view must not be written to.
// A miss returns ErrNotFound itself, unwrapped. An entry holds at least
// 61423 pins at once, and at most 65535; past that, Pin is ErrBusy. Pin
// takes no lock.
func (c *Cache) Pin(key []byte) ([]byte, Handle, error) {
	if err := c.checkKey("pin", key); err != nil {
		return nil, Handle{}, err
	}
	h := c.hash(key)
	if m := c.loadMoves(); !check.On && !hazardsOff && m&(movesActive|movesClosed) == 0 {
		st := c.cur()
		p, f := st.peek(h, key)
		switch f {
		case foundNo:
			if c.miss(st, h, m) {
				return nil, Handle{}, ErrNotFound
			}
		case foundYes:
			if hd, ok := c.pinHazard(st, &p, h, m); ok {
				return st.view(p.off+keyLen(p.lens), valLen(p.lens)), hd, nil
			}
		}
	}
	return c.pinSlow(key, h)
}

// pinSlow is Pin after interference, and in the checked build: it retries
// a few times, then takes the read lock.
func (c *Cache) pinSlow(key []byte, h uint64) ([]byte, Handle, error) {
	if check.On {
		return c.pinLocked(key, h)
	}
	for range optimisticTries {
		m, ok := c.readBegin()
		if !ok {
			return nil, Handle{}, c.keyError("pin", key, ErrClosed)
		}
		st := c.cur()
		id, w, off, lens, f := st.find(h, key)
		switch f {
		case foundNo:
			if c.miss(st, h, m) {
				return nil, Handle{}, ErrNotFound
			}
			continue
		case foundRetry:
			continue
		}
		hd, err := c.pin(st, id, w, h, lens, m)
		if err == errChanged {
			continue
		}
		if err != nil {
			return nil, Handle{}, c.keyError("pin", key, err)
		}
		return st.view(off+keyLen(lens), valLen(lens)), hd, nil
	}
	return c.pinLocked(key, h)
}

// pinLocked is Pin under the read lock: in the checked build, and after
// repeated interference. Compactions, rebuilds and Close hold the write
// lock, so none can run.
func (c *Cache) pinLocked(key []byte, h uint64) ([]byte, Handle, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, Handle{}, c.keyError("pin", key, ErrClosed)
	}
	st, m := c.cur(), c.loadMoves() // steady under the lock
	for {
		id, w, off, lens, f := st.find(h, key)
		if f != foundYes {
			c.miss(st, h, m)
			return nil, Handle{}, ErrNotFound
		}
		hd, err := c.pin(st, id, w, h, lens, m)
		if err == errChanged {
			continue // only the pin count changed: the lock keeps the rest
		}
		if err != nil {
			return nil, Handle{}, c.keyError("pin", key, err)
		}
		return st.view(off+keyLen(lens), valLen(lens)), hd, nil
	}
}

// find probes the index for key, whose hash is h, and returns its entry id,
// the entry's word, offset and lengths as it read them. A foundYes result
// is only as good as the word: the caller validates with stable, or pins.
// foundNo is final: every slot that could have held the key was passed while
// the table did not change, and no entry the probe met was changing.
func (s *store) find(h uint64, key []byte) (id uint32, w, off, lens uint64, f found) {
	hdr := s.idx.hdr.Load()
	t, n := s.idx.table(hdr)
	tag, ready, hi := tagOf(h), s.ents.ready.Load(), s.hi.Load()
	f = foundNo
probe:
	for b, left := home(h, n), n; left > 0; b, left = next(b, n), left-1 {
		bk := t.at(b)
		for j := range bucketSlots {
			k := loadKey(bk, j)
			if k == 0 {
				break probe
			}
			if uint32(k) == 0 || k>>32 != tag {
				continue
			}
			if id = idOf(k); uint64(id) >= ready {
				f = foundRetry // a slot of a table being rebuilt
				continue
			}
			e := s.entry(id)
			if w = e.loadWord(); w&stateMask != liveBits {
				f = foundRetry // its slot is about to change
				continue
			}
			off, lens = e.loadOff(), e.loadLens()
			if e.loadHash() == h && keyLen(lens) == uint64(len(key)) && off+keyLen(lens)+valLen(lens) <= hi &&
				equal(key, s.view(off, keyLen(lens))) {
				return id, w, off, lens, foundYes
			}
			if e.loadWord()&identity != w&identity {
				f = foundRetry // what was compared may have been torn
			}
		}
	}
	if f == foundNo && s.idx.hdr.Load() != hdr {
		f = foundRetry
	}
	return 0, 0, 0, 0, f
}

// stable reports whether what a reader read of entry e after loading its
// word w and the moves word m is still good: same occupant, still live, and
// not moved. The loads being validated come before it; fence.Load orders
// them where the hardware would not.
func (c *Cache) stable(e *entry, w, m uint64) bool {
	fence.Load()
	return e.loadWord()&identity == w&identity && c.loadMoves() == m
}

// readBegin waits out a compaction and returns the moves word a reader
// validates against; ok is false once the cache is closed.
func (c *Cache) readBegin() (m uint64, ok bool) {
	for spins := 0; ; spins++ {
		m = c.loadMoves()
		if m&movesClosed != 0 {
			return 0, false
		}
		if m&movesActive == 0 {
			return m, true
		}
		switch {
		case spins < 100:
			runtime.Gosched()
		default:
			time.Sleep(50 * time.Microsecond)
		}
	}
}
