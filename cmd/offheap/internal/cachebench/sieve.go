// SIEVE (Zhang et al., "SIEVE is Simpler than LRU", NSDI 2024), a baseline
// of the hit-ratio cases, written here as the paper and libCacheSim's
// Sieve.c describe it.

package cachebench

// sieve is a SIEVE cache of keys, sized in entries. New keys enter at the
// head of one FIFO queue; a hit only sets the entry's visited bit. To evict,
// a hand walks from where it stopped last (the tail at first) toward the
// head, clearing visited bits, and evicts the first entry it finds
// unvisited; it wraps from the head to the tail, and next time resumes at
// the entry newer than the one it evicted.
//
// Invariants: index holds exactly the keys in q, each at its slot;
// q.n <= capacity; hand is nilNode or a node in q.
type sieve struct {
	capacity int
	index    map[uint64]int32
	keys     []uint64
	visited  []bool
	l        links
	q        list
	hand     int32
	evicted  func(key uint64) // if set, told of each eviction (tests)
}

func newSieve(capacity int) *sieve {
	return &sieve{
		capacity: capacity,
		index:    make(map[uint64]int32, capacity),
		keys:     make([]uint64, capacity),
		visited:  make([]bool, capacity),
		l:        newLinks(capacity),
		q:        newList(),
		hand:     nilNode,
	}
}

// access looks key up and, on a miss, inserts it, evicting if full; it
// reports a hit.
func (s *sieve) access(key uint64) bool {
	if id, ok := s.index[key]; ok {
		s.visited[id] = true
		return true
	}
	id := int32(s.q.n)
	if s.q.n == s.capacity {
		id = s.evict()
	}
	s.keys[id], s.visited[id] = key, false
	s.index[key] = id
	s.l.pushHead(&s.q, id)
	return false
}

// evict moves the hand to the next unvisited entry, removes it and returns
// its slot.
func (s *sieve) evict() int32 {
	id := s.hand
	if id == nilNode {
		id = s.q.tail
	}
	for s.visited[id] {
		s.visited[id] = false
		if id = s.l.newer[id]; id == nilNode {
			id = s.q.tail
		}
	}
	s.hand = s.l.newer[id]
	s.l.remove(&s.q, id)
	delete(s.index, s.keys[id])
	if s.evicted != nil {
		s.evicted(s.keys[id])
	}
	return id
}

func (s *sieve) close() error { return nil }
