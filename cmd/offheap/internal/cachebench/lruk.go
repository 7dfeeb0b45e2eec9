// Opteryx's BufferPool eviction (opteryx/compiled/structures/lru_k.pyx,
// LRU_K with k=2, as opteryx/shared/buffer_pool.py uses it), a baseline of
// the hit-ratio cases: the same victims, found in O(log n) instead of by a
// scan of every entry.

package cachebench

// lruk chooses victims exactly as Opteryx's BufferPool does. Every access
// (a hit, or the Set that inserts a key) takes the next tick of a clock,
// and an entry remembers its last two. To evict, Opteryx scans every entry
// twice: first for the entries accessed twice or more, taking the one whose
// penultimate access is oldest; only if there is none, for the oldest entry
// accessed once (its insertion). So a key that was hit is evicted before
// any that was not — the inverse of LRU-K, which keeps such keys — and a
// key's history goes with it. The BufferPool evicts one entry before it
// inserts into a full pool; with equal entry sizes that is a cache of
// capacity entries. Ticks are unique, so the choice has no ties.
//
// Here the entries accessed once wait in a FIFO (tail oldest: once; a hit
// moves them out for good) and the others in a 4-ary min-heap keyed by
// their penultimate access, kept in the heap's items for locality (a hit
// raises the key to the entry's last access), so each eviction or hit
// costs O(log n), not Opteryx's O(n).
//
// Invariants: index holds exactly the keys in once and heap, each at its
// slot; inHeap[id] says which; heap[pos[id]].id == id for an id in heap;
// heap[(i-1)/4].penult < heap[i].penult; once.n + len(heap) <= capacity.
type lruk struct {
	capacity int
	index    map[uint64]int32
	keys     []uint64
	last     []int64 // the tick of the last access
	pos      []int32 // the index in heap, if in heap
	inHeap   []bool  // accessed twice or more: in heap, not once
	l        links
	once     list
	heap     []heapItem
	slots    slots
	clock    int64
	evicted  func(key uint64) // if set, told of each eviction (tests)
}

// heapItem is an entry in the heap: its slot and penultimate access.
type heapItem struct {
	penult int64
	id     int32
}

// heapArity is the heap's fan-out: four 16-byte items share a cache line.
const heapArity = 4

func newLRUK(capacity int) *lruk {
	return &lruk{
		capacity: capacity,
		index:    make(map[uint64]int32, capacity),
		keys:     make([]uint64, capacity),
		last:     make([]int64, capacity),
		pos:      make([]int32, capacity),
		inHeap:   make([]bool, capacity),
		l:        newLinks(capacity),
		once:     newList(),
		heap:     make([]heapItem, 0, capacity),
	}
}

// access looks key up and, on a miss, inserts it, evicting first if full;
// it reports a hit.
func (c *lruk) access(key uint64) bool {
	c.clock++
	if id, ok := c.index[key]; ok {
		c.hit(id)
		return true
	}
	if c.once.n+len(c.heap) == c.capacity {
		c.evict()
	}
	id := c.slots.take()
	c.keys[id], c.last[id], c.inHeap[id] = key, c.clock, false
	c.index[key] = id
	c.l.pushHead(&c.once, id)
	return false
}

// hit records an access to the entry at slot id: its last access becomes
// its penultimate.
func (c *lruk) hit(id int32) {
	penult := c.last[id]
	c.last[id] = c.clock
	if !c.inHeap[id] {
		c.l.remove(&c.once, id)
		c.inHeap[id] = true
		c.heap = append(c.heap, heapItem{penult, id})
		c.up(len(c.heap) - 1)
		return
	}
	p := int(c.pos[id])
	c.heap[p].penult = penult
	c.down(p)
}

// evict removes Opteryx's victim.
func (c *lruk) evict() {
	var id int32
	if n := len(c.heap); n > 0 {
		id = c.heap[0].id
		c.heap[0] = c.heap[n-1]
		c.heap = c.heap[:n-1]
		if n > 1 {
			c.pos[c.heap[0].id] = 0
			c.down(0)
		}
	} else {
		id = c.l.popTail(&c.once)
	}
	delete(c.index, c.keys[id])
	c.slots.give(id)
	if c.evicted != nil {
		c.evicted(c.keys[id])
	}
}

// up moves the item at i toward the root to its place.
func (c *lruk) up(i int) {
	it := c.heap[i]
	for i > 0 {
		p := (i - 1) / heapArity
		if c.heap[p].penult < it.penult {
			break
		}
		c.place(i, c.heap[p])
		i = p
	}
	c.place(i, it)
}

// down moves the item at i away from the root to its place.
func (c *lruk) down(i int) {
	it, n := c.heap[i], len(c.heap)
	for {
		first := heapArity*i + 1
		if first >= n {
			break
		}
		m := first
		for ch := first + 1; ch < min(first+heapArity, n); ch++ {
			if c.heap[ch].penult < c.heap[m].penult {
				m = ch
			}
		}
		if it.penult < c.heap[m].penult {
			break
		}
		c.place(i, c.heap[m])
		i = m
	}
	c.place(i, it)
}

func (c *lruk) place(i int, it heapItem) {
	c.heap[i] = it
	c.pos[it.id] = int32(i)
}

func (c *lruk) close() error { return nil }
