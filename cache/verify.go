// The checked build's invariant checks (see the invariants on Cache).

package cache

import (
	"fmt"

	"github.com/offheap/offheap/internal/check"
)

// checkAfterMutation verifies the invariants in the checked build: after
// every mutation while the cache has used at most 4096 ids, then every
// ids/8th mutation, so the checked build stays amortized O(1) per
// operation (some eight entries checked per mutation). Callers hold the lock.
func (c *Cache) checkAfterMutation() {
	if !check.On || c.closed {
		return
	}
	// A countdown, not mutations%(n/8): while the cache grows, mutations
	// and n rise together and the remainder would be zero every eighth.
	if n := c.cur().nextID; n > 4096 {
		if c.sinceCheck++; c.sinceCheck < n/8 {
			return
		}
	}
	c.sinceCheck = 0
	if err := c.verify(); err != nil {
		check.Invariant(false, "%s: %v", c.label, err)
	}
}

// verify walks the entry table and the index and reports the first broken
// invariant. Callers hold the lock.
func (c *Cache) verify() error {
	var used, gone int64
	live, s := 0, c.cur()
	for id := range s.nextID {
		e := s.entry(id)
		w := e.loadWord()
		weight := c.weight(keyLen(e.lens) + valLen(e.lens))
		if w&ownBit != 0 && pinsOf(w) == 0 {
			return fmt.Errorf("entry %d has its own handle out and no pins: word %#x", id, w)
		}
		switch stateOf(w) {
		case stateLive:
			live++
			used += weight
			if err := s.verifyIndexed(id, e); err != nil {
				return err
			}
		case stateGone:
			gone += weight
			if pinsOf(w) == 0 {
				return fmt.Errorf("entry %d is gone with no pins: it should have been freed", id)
			}
		case stateFree:
			if w&^genMask != 0 {
				return fmt.Errorf("free entry %d has word %#x", id, w)
			}
		default:
			return fmt.Errorf("entry %d has state %d", id, stateOf(w))
		}
	}
	switch {
	case used != c.used || gone != c.gone:
		return fmt.Errorf("entries hold %d live and %d gone bytes, counted %d and %d", used, gone, c.used, c.gone)
	case used != s.pol.used():
		return fmt.Errorf("live entries hold %d bytes, the policy counts %d", used, s.pol.used())
	case c.used+c.gone+c.promised > c.budget:
		return fmt.Errorf("%d used + %d gone + %d promised bytes exceed the budget of %d", c.used, c.gone, c.promised, c.budget)
	case live != int(c.count) || uint64(live) != s.idx.live:
		return fmt.Errorf("%d live entries, counted %d, index holds %d", live, c.count, s.idx.live)
	}
	return s.verifyFree(live)
}

// verifyIndexed checks that live entry id is in the index under its hash,
// at its location.
func (s *store) verifyIndexed(id uint32, e *entry) error {
	t, n := s.idx.table(s.idx.hdr.Load())
	want := keyOf(e.hash, id)
	for b, left := home(e.hash, n), n; left > 0; b, left = next(b, n), left-1 {
		bk := t.at(b)
		if loadSeq(bk)&1 != 0 {
			return fmt.Errorf("bucket %d is being written", b)
		}
		for j := range bucketSlots {
			switch k := loadKey(bk, j); k {
			case 0:
				return fmt.Errorf("live entry %d is not in the index", id)
			case want:
				if loc := loadLoc(bk, j); loc != locOf(e.off, keyLen(e.lens), valLen(e.lens)) {
					return fmt.Errorf("live entry %d: the index locates it at %#x, not %#x", id, loc, locOf(e.off, keyLen(e.lens), valLen(e.lens)))
				}
				return nil
			}
		}
	}
	return fmt.Errorf("live entry %d is not in the index", id)
}

// verifyFree checks the free-id stack: free entries only, each once, and
// that every id is accounted for.
func (s *store) verifyFree(live int) error {
	free, gone := 0, 0
	for id := s.freeID; id != noID; id = uint32(s.entry(id).off) {
		if stateOf(s.entry(id).word) != stateFree {
			return fmt.Errorf("entry %d on the free stack is not free", id)
		}
		if free++; free > int(s.nextID) {
			return fmt.Errorf("the free stack has a cycle")
		}
	}
	for id := range s.nextID {
		if stateOf(s.entry(id).word) == stateGone {
			gone++
		}
	}
	if live+gone+free+s.retired != int(s.nextID) {
		return fmt.Errorf("%d live + %d gone + %d free + %d retired != %d ids", live, gone, free, s.retired, s.nextID)
	}
	return nil
}
