// S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction",
// SOSP 2023), a baseline of the hit-ratio cases, written here with the
// defaults and the exact rules of libCacheSim's S3FIFO.c, which the paper's
// figures come from.

package cachebench

// Sizes of S3-FIFO's queues, as fractions of the capacity (libCacheSim's
// fifo-size-ratio and ghost-size-ratio), and its move-to-main threshold.
const (
	s3SmallRatio = 0.10
	s3GhostRatio = 0.90
	s3MoveToMain = 2 // hits in the small queue that earn a place in the main one
	s3MaxFreq    = 3 // the main queue's frequency is 2 bits
)

// s3fifo is an S3-FIFO cache of keys, sized in entries, in three FIFO
// queues: small (10% of the capacity), main (the rest) and ghost (keys
// only, 90% of the capacity). A new key enters small, or main if the ghost
// remembers it. A hit adds one to the entry's frequency (capped at 3; the
// rules below never look higher). When the cache is full:
//   - if main holds more than its share, or small is empty, main evicts:
//     its tail goes back to its head with one frequency less while it has
//     any, and the first with none leaves;
//   - else small evicts: its tail moves to main's head, with frequency 0,
//     while it was hit at least twice in small (s3MoveToMain), and the
//     first that was not leaves for the ghost. Main may then hold more than
//     its share, which the next evictions take back.
//
// The ghost is a FIFO of keys: the oldest leaves when it is full, and a key
// leaves it early when requested.
//
// Invariants: index holds exactly the keys in small and main; small.n +
// main.n <= capacity; ghost holds no key of index; freq[id] <= s3MaxFreq.
type s3fifo struct {
	capacity, mainCap int // all entries; main's share
	index             map[uint64]int32
	keys              []uint64
	freq              []uint8
	l                 links
	small, main       list
	slots             slots
	ghost             *ghostFIFO
	evicted           func(key uint64) // if set, told of each eviction (tests)
}

func newS3FIFO(capacity int) *s3fifo {
	// The products and truncations are libCacheSim's; a small queue of no
	// entry (capacities below 10) would admit nothing, so it has one.
	small := max(int(float64(capacity)*s3SmallRatio), 1)
	return newS3FIFOSized(small, capacity-small, int(float64(capacity)*s3GhostRatio))
}

// newS3FIFOSized returns an S3-FIFO cache whose small and main queues
// share small+main entries and whose ghost remembers ghost keys.
func newS3FIFOSized(small, main, ghost int) *s3fifo {
	capacity := small + main
	return &s3fifo{
		capacity: capacity,
		mainCap:  main,
		index:    make(map[uint64]int32, capacity),
		keys:     make([]uint64, capacity),
		freq:     make([]uint8, capacity),
		l:        newLinks(capacity),
		small:    newList(),
		main:     newList(),
		ghost:    newGhostFIFO(ghost),
	}
}

// access looks key up and, on a miss, inserts it, evicting if full; it
// reports a hit.
func (s *s3fifo) access(key uint64) bool {
	if id, ok := s.index[key]; ok {
		if s.freq[id] < s3MaxFreq {
			s.freq[id]++
		}
		return true
	}
	ghostHit := s.ghost.remove(key)
	for s.small.n+s.main.n >= s.capacity {
		s.evict()
	}
	id := s.slots.take()
	s.keys[id], s.freq[id] = key, 0
	s.index[key] = id
	if ghostHit {
		s.l.pushHead(&s.main, id)
	} else {
		s.l.pushHead(&s.small, id)
	}
	return false
}

// evict makes room for one entry, from main or small as the type's doc says.
func (s *s3fifo) evict() {
	if s.main.n > s.mainCap || s.small.n == 0 {
		s.evictMain()
		return
	}
	s.evictSmall()
}

func (s *s3fifo) evictMain() {
	for s.main.n > 0 {
		id := s.l.popTail(&s.main)
		if f := s.freq[id]; f > 0 {
			s.freq[id] = f - 1
			s.l.pushHead(&s.main, id)
			continue
		}
		s.drop(id)
		return
	}
}

func (s *s3fifo) evictSmall() {
	for s.small.n > 0 {
		id := s.l.popTail(&s.small)
		if s.freq[id] >= s3MoveToMain {
			s.freq[id] = 0
			s.l.pushHead(&s.main, id)
			continue
		}
		s.ghost.add(s.keys[id])
		s.drop(id)
		return
	}
}

// drop evicts the entry at slot id, which is in no queue.
func (s *s3fifo) drop(id int32) {
	delete(s.index, s.keys[id])
	s.slots.give(id)
	if s.evicted != nil {
		s.evicted(s.keys[id])
	}
}

func (s *s3fifo) close() error { return nil }

// ghostFIFO is a FIFO of at most capacity keys; one of capacity 0 holds
// nothing.
type ghostFIFO struct {
	capacity int
	index    map[uint64]int32
	keys     []uint64
	l        links
	q        list
	slots    slots
}

func newGhostFIFO(capacity int) *ghostFIFO {
	return &ghostFIFO{
		capacity: capacity,
		index:    make(map[uint64]int32, capacity),
		keys:     make([]uint64, capacity),
		l:        newLinks(capacity),
		q:        newList(),
	}
}

// add puts key at the head unless it is there already, dropping the
// oldest key if full.
func (g *ghostFIFO) add(key uint64) {
	if g.capacity == 0 {
		return
	}
	if _, ok := g.index[key]; ok {
		return
	}
	if g.q.n == g.capacity {
		old := g.l.popTail(&g.q)
		delete(g.index, g.keys[old])
		g.slots.give(old)
	}
	id := g.slots.take()
	g.keys[id] = key
	g.index[key] = id
	g.l.pushHead(&g.q, id)
}

// remove takes key out and reports whether it was there.
func (g *ghostFIFO) remove(key uint64) bool {
	id, ok := g.index[key]
	if !ok {
		return false
	}
	delete(g.index, key)
	g.l.remove(&g.q, id)
	g.slots.give(id)
	return true
}
