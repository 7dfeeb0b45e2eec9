// Resize: the budget at run time, and the compaction that lets a shrunk
// cache give its memory back to the operating system.

package cache

import (
	"fmt"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
)

// Resize sets the budget to n bytes, at most MaxBudget. Shrinking evicts,
// the policy's victims first, until the entries fit. A cache with a pool of
// its own then moves its unpinned entries together and shrinks the pool, so
// the memory goes back to the operating system at once, and shrinks its
// index; readers wait while entries move. If pinned entries alone exceed n,
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
	for c.used+c.gone+c.promised > b {
		if _, ok := c.evictOne(); !ok {
			c.checkAfterMutation()
			return c.sizeError("resize", "to", n, fmt.Errorf("%d bytes pinned or promised: %w", c.used+c.gone+c.promised, ErrFull))
		}
	}
	if c.owned {
		if err := c.resizePool(b); err != nil {
			return c.sizeError("resize", "to", n, err)
		}
	}
	old := c.budget
	c.budget = b
	c.pol.setBudget(b)
	if b < old {
		c.shrinkIndex()
	}
	c.checkAfterMutation()
	return nil
}

// resizePool makes the cache's own pool b bytes: growing is in place;
// shrinking first moves the entries together. Latched entries (pinned, or
// being set) that end past b keep the pool larger than b for now; that is
// not an error, since the budget counts entries, not capacity. Callers hold
// the lock.
func (c *Cache) resizePool(b int64) error {
	if b >= int64(c.p.Stats().Capacity) {
		return c.p.Resize(int(b))
	}
	c.compact(func() { _ = c.p.Resize(int(b)) })
	return nil
}

// compact lets the pool move the entries: it marks every entry without
// pins moving and drops the cache's latch on it, runs move (which compacts
// the pool), and latches the entries again at their new offsets. Readers
// wait while the moves word is odd, and a pin taken meanwhile is undone
// (see Pin), so nobody reads an entry at an old offset. Callers hold the lock.
func (c *Cache) compact(move func()) {
	atomic.AddUint64(&c.moves, 1)
	defer atomic.AddUint64(&c.moves, 1)
	for id := range c.nextID {
		e := c.entryAt(id)
		if w := e.loadWord(); stateOf(w) == stateLive && pinsOf(w) == 0 && e.casWord(w, w|movingBit) {
			_ = c.p.Unlatch(c.ref(id))
		}
	}
	move()
	for id := range c.nextID {
		e := c.entryAt(id)
		if e.loadWord()&movingBit == 0 {
			continue
		}
		b, err := c.p.Latch(c.ref(id))
		if check.On {
			check.Invariant(err == nil, "%s: latch entry %d again after compaction: %v", c.label, id, err)
		}
		if err == nil {
			atomic.StoreUint64(&e.off, c.offsetOf(b))
		}
		for {
			w := e.loadWord()
			if e.casWord(w, w&^movingBit) {
				break
			}
		}
	}
	c.st.compactions++
}

// ref returns entry id's pool.Ref.
func (c *Cache) ref(id uint32) pool.Ref { return pool.Ref(*c.refs.at(uint64(id))) }

// shrinkIndex rehashes the index into a table sized for the live entries
// when they fill less than an eighth of it, giving the rest back.
func (c *Cache) shrinkIndex() {
	_, mask := c.idx.table(c.idx.hdr.Load())
	if c.idx.live*8 < mask+1 && mask+1 > 1<<minIndexLog {
		_ = c.idx.rehash(c, c.idx.live)
	}
}
