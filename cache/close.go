// Close, Len and Stats.

package cache

import (
	"fmt"
	"sync/atomic"

	"github.com/offheap/offheap/internal/fence"
	"github.com/offheap/offheap/vmem"
)

// Stats describes a cache's memory and counts its operations.
type Stats struct {
	Hits, Misses                         int // Get and Pin lookups (GetOrLoad's too); Has counts neither
	Sets, Rejections, Evictions, Deletes int // Sets that stored; Sets the admission policy refused; entries evicted (for the budget or a pool's reclaim); Deletes that removed
	Entries                              int // entries held (Len)
	BytesUsed                            int // pool bytes of the entries, rounded as the pool counts them, with pinned entries already deleted
	BytesPinned                          int // pool bytes of entries with pins out (deleted ones too)
	Handles                              int // pins out
	Budget, MaxBudget                    int // bytes; BytesUsed <= Budget
	MetaBytes                            int // off-heap bytes of the metadata in use: the index, the entry tables, the policy, handles and per-P state, and for a pool of its own the pool's slot table
	Loads, LoadErrors                    int // loader calls run by GetOrLoad, and those that failed
	Compactions, Rebuilds                int // Resizes that gave memory back by compacting in place (pins were out), and by rebuilding
	Name                                 string
}

// addCount adds d to the count of live entries, which Len reads without
// the lock. Callers hold the lock.
func (c *Cache) addCount(d int) { fence.StoreRelease(&c.count, c.count+uint64(d)) }

// Len returns the number of entries the cache holds.
func (c *Cache) Len() int { return int(atomic.LoadUint64(&c.count)) }

// Stats returns a snapshot of the cache's figures. After Close it returns
// the counters as they were, with no entries or bytes.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return c.final
	}
	c.promoteAll() // so the pinned bytes count each entry once
	return c.statsLocked()
}

// statsLocked builds Stats; callers hold the lock.
func (c *Cache) statsLocked() Stats {
	st := Stats{
		Sets: c.ops.sets, Rejections: c.ops.rejections, Evictions: c.ops.evictions, Deletes: c.ops.deletes,
		Entries:     int(atomic.LoadUint64(&c.count)),
		BytesUsed:   int(c.used + c.gone),
		Budget:      int(c.budget),
		MaxBudget:   int(c.maxBudget),
		Compactions: c.ops.compactions,
		Rebuilds:    c.ops.rebuilds,
		Name:        c.nameOpt,
	}
	for i := range uint64(maxPs + 1) {
		ps := c.pcs.at(i)
		st.Hits += int(atomic.LoadUint64(&ps.hits))
		st.Misses += int(atomic.LoadUint64(&ps.misses))
		st.BytesPinned += int(atomic.LoadInt64(&ps.pinned))
		st.Handles += int(atomic.LoadInt64(&ps.out))
	}
	st.BytesPinned += int(c.handles.pinned.Load())
	st.Handles += int(c.handles.out.Load()) + c.hazardsOut()
	s := c.cur()
	st.MetaBytes = c.pcs.r.Len() + c.hslots.r.Len() + s.metaBytes()
	if c.owned {
		st.MetaBytes += s.p.Stats().MetaBytes
	}
	st.Loads, st.LoadErrors = c.loads.counts()
	return st
}

// Close frees the cache's memory: its entries go back to the pool (a pool
// of its own is closed), loads in flight are cancelled, and every method
// then returns ErrClosed (Get and Has report a miss). With handles out it
// returns ErrBusy and the cache stays usable.
func (c *Cache) Close() error {
	if err := c.markClosed(); err != nil {
		return err
	}
	c.sets.Wait() // each releases its reservation when it finds the cache closed
	c.loads.cancelAll()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.cur()
	for id := range s.nextID {
		if stateOf(s.entry(id).word) == stateLive {
			s.releaseSegment(id)
		}
	}
	var err error
	if c.owned {
		err = s.p.Close()
	} else {
		s.p.RemoveReclaimer(c.rec)
	}
	c.dropMemory()
	if err != nil {
		return fmt.Errorf("%s: close: %w", c.label, err)
	}
	return nil
}

// markClosed is Close's first step: unless pins are out, it stops every
// method and lock-free reader from using the cache.
func (c *Cache) markClosed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("%s: close: %w", c.label, ErrClosed)
	}
	atomic.AddUint64(&c.moves, 1) // odd: a pin taken from now on is undone
	c.promoteAll()
	if n := c.pinnedEntries(); n > 0 {
		atomic.AddUint64(&c.moves, 1)
		return fmt.Errorf("%s: close: %d entries pinned: %w", c.label, n, ErrBusy)
	}
	c.final = c.statsLocked()
	c.final.Entries, c.final.BytesUsed, c.final.BytesPinned, c.final.Handles, c.final.MetaBytes = 0, 0, 0, 0, 0
	atomic.StoreUint64(&c.moves, movesClosed)
	c.closed = true
	fence.StoreRelease(&c.count, 0)
	return nil
}

// pinnedEntries counts entries with pins, scanning the table. Callers hold the lock.
func (c *Cache) pinnedEntries() int {
	n, s := 0, c.cur()
	for id := range s.nextID {
		if pinsOf(s.entry(id).loadWord()) > 0 {
			n++
		}
	}
	return n
}

// dropMemory gives the tables' memory back at Close. A lock-free reader
// racing with Close may still be reading them (or telling the policy of a
// hit), so they stay mapped until no one holds them (see vmem.Retire); the
// checked build's readers take the lock, so it unmaps at once.
func (c *Cache) dropMemory() {
	c.cur().retire()
	_ = vmem.Retire(c, c.pcs.r, c.hslots.r)
}
