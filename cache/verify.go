// The checked build's invariant checks (see the invariants on Cache).

package cache

import (
	"fmt"

	"github.com/offheap/offheap/internal/check"
)

// checkAfterMutation verifies the invariants in the checked build: after
// every mutation while the cache is small, then about every entries/64th,
// so the checked build stays amortized O(1) per operation. Callers hold the
// lock.
func (c *Cache) checkAfterMutation() {
	if !check.On || c.closed {
		return
	}
	c.mutations++
	if n := uint64(c.nextID); n <= 4096 || c.mutations%(n/64) == 0 {
		if err := c.verify(); err != nil {
			check.Invariant(false, "%s: %v", c.label, err)
		}
	}
}

// verify walks the entry table and the index and reports the first broken
// invariant. Callers hold the lock.
func (c *Cache) verify() error {
	var used, gone int64
	live := 0
	for id := range c.nextID {
		e := c.entryAt(id)
		w := e.loadWord()
		weight := c.weight(keyLen(e.lens) + valLen(e.lens))
		switch stateOf(w) {
		case stateLive:
			live++
			used += weight
			if err := c.verifyIndexed(id, e); err != nil {
				return err
			}
		case stateGone:
			gone += weight
			if pinsOf(w) == 0 {
				return fmt.Errorf("entry %d is gone with no pins: it should have been freed", id)
			}
		case stateFree:
			if pinsOf(w) != 0 || w&parkedBit != 0 {
				return fmt.Errorf("free entry %d has word %#x", id, w)
			}
		default:
			return fmt.Errorf("entry %d has state %d", id, stateOf(w))
		}
	}
	switch {
	case used != c.used || gone != c.gone:
		return fmt.Errorf("entries hold %d live and %d gone bytes, counted %d and %d", used, gone, c.used, c.gone)
	case used != c.pol.used():
		return fmt.Errorf("live entries hold %d bytes, the policy counts %d", used, c.pol.used())
	case c.used+c.gone+c.promised > c.budget:
		return fmt.Errorf("%d used + %d gone + %d promised bytes exceed the budget of %d", c.used, c.gone, c.promised, c.budget)
	case live != int(c.count.Load()) || uint64(live) != c.idx.live:
		return fmt.Errorf("%d live entries, counted %d, index holds %d", live, c.count.Load(), c.idx.live)
	}
	return c.verifyFree(live)
}

// verifyIndexed checks that live entry id is in the index under its hash.
func (c *Cache) verifyIndexed(id uint32, e *entry) error {
	t, mask := c.idx.table(c.idx.hdr.Load())
	want := slotOf(e.hash, id)
	for i, n := e.hash&mask, uint64(0); n <= mask; i, n = (i+1)&mask, n+1 {
		s := c.idx.load(t, i)
		if s == want {
			return nil
		}
		if s == 0 {
			break
		}
	}
	return fmt.Errorf("live entry %d is not in the index", id)
}

// verifyFree checks the free-id stack: free entries only, each once, and
// that every id is accounted for.
func (c *Cache) verifyFree(live int) error {
	free, gone := 0, 0
	for id := c.freeID; id != noID; id = uint32(c.entryAt(id).off) {
		if stateOf(c.entryAt(id).word) != stateFree {
			return fmt.Errorf("entry %d on the free stack is not free", id)
		}
		if free++; free > int(c.nextID) {
			return fmt.Errorf("the free stack has a cycle")
		}
	}
	for id := range c.nextID {
		if stateOf(c.entryAt(id).word) == stateGone {
			gone++
		}
	}
	if live+gone+free+c.retired != int(c.nextID) {
		return fmt.Errorf("%d live + %d gone + %d free + %d retired != %d ids", live, gone, free, c.retired, c.nextID)
	}
	return nil
}
