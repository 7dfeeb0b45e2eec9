package cachebench

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// step is one access of a hand-worked sequence and what it should do.
type step struct {
	key     uint64
	hit     bool
	evicted []uint64 // in order
}

// baseline is what the tests need of a written-here baseline.
type baseline interface {
	access(key uint64) bool
	setEvicted(func(uint64))
	resident() []uint64 // sorted
}

func (s *sieve) setEvicted(f func(uint64))  { s.evicted = f }
func (s *s3fifo) setEvicted(f func(uint64)) { s.evicted = f }
func (c *lruk) setEvicted(f func(uint64))   { c.evicted = f }
func (s *sieve) resident() []uint64         { return sortedKeys(s.index) }
func (s *s3fifo) resident() []uint64        { return sortedKeys(s.index) }
func (c *lruk) resident() []uint64          { return sortedKeys(c.index) }

func sortedKeys(m map[uint64]int32) []uint64 {
	var ks []uint64
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// runSteps replays steps against b, checking each hit and eviction.
func runSteps(t *testing.T, b baseline, steps []step) {
	t.Helper()
	var got []uint64
	b.setEvicted(func(k uint64) { got = append(got, k) })
	for i, s := range steps {
		got = got[:0]
		if hit := b.access(s.key); hit != s.hit {
			t.Fatalf("step %d: access %d: hit %v, want %v", i+1, s.key, hit, s.hit)
		}
		if !slices.Equal(got, s.evicted) {
			t.Fatalf("step %d: access %d: evicted %v, want %v", i+1, s.key, got, s.evicted)
		}
	}
}

// Keys of the hand-worked sequences.
const (
	a uint64 = iota + 1
	b
	c
	d
	e
	f
	g
	h
	i
	j
	k
)

// TestSieveHandWorked follows SIEVE's rules by hand at capacity 3: the hand
// starts at the tail, clears visited bits on its way to the head, wraps
// around, and resumes at the entry newer than the one it evicted.
func TestSieveHandWorked(t *testing.T) {
	runSteps(t, newSieve(3), []step{
		{a, false, nil}, {b, false, nil}, {c, false, nil}, // queue (head..tail): c b a
		{a, true, nil},
		{d, false, []uint64{b}}, // hand at the tail, a: visited, cleared; b not: evicted; hand -> c. d c a
		{c, true, nil},
		{e, false, []uint64{d}}, // c cleared; d evicted; hand -> none (d was the head). e c a
		{a, true, nil},
		{f, false, []uint64{c}}, // from the tail: a cleared; c (cleared before) evicted; hand -> e. f e a
		{g, false, []uint64{e}}, // e evicted; hand -> f. g f a
		{a, true, nil}, {f, true, nil}, {g, true, nil},
		{h, false, []uint64{f}}, // f, g cleared, wrap to the tail, a cleared, f evicted; hand -> g. h g a
		{i, false, []uint64{g}}, // g evicted; hand -> h. i h a
		{a, true, nil}, {h, true, nil}, {i, true, nil},
	})
}

// model is a reference implementation, written as literally as the rules
// read, that a fuzz test checks a baseline against.
type model interface {
	access(key uint64) (hit bool, evicted []uint64)
	resident() []uint64 // sorted
}

// fuzzAgainst checks, for operation sequences drawn from the fuzzer's
// bytes (the first picks the capacity, each next one a key), that the
// baseline made by newB hits, evicts and holds what the model does after
// every access.
func fuzzAgainst(f *testing.F, newB func(capacity int) baseline, newM func(capacity int) model) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for n := range 24 {
		seed := make([]byte, 64+n*40)
		for i := range seed {
			seed[i] = byte(rnd.IntN(256))
		}
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		capacity := 1 + int(data[0])%40
		space := uint64(2*capacity + 3)
		bl, m := newB(capacity), newM(capacity)
		var got []uint64
		bl.setEvicted(func(k uint64) { got = append(got, k) })
		for i, x := range data[1:] {
			key := uint64(x) % space
			got = got[:0]
			hit := bl.access(key)
			wantHit, want := m.access(key)
			if hit != wantHit || !slices.Equal(got, want) {
				t.Fatalf("capacity %d, access %d (key %d): hit %v evicted %v, model: hit %v evicted %v", capacity, i, key, hit, got, wantHit, want)
			}
			if r, w := bl.resident(), m.resident(); !slices.Equal(r, w) {
				t.Fatalf("capacity %d, after access %d (key %d): holds %v, model holds %v", capacity, i, key, r, w)
			}
		}
	})
}

// sieveModel is SIEVE over a slice, oldest first: the hand is an index
// that moves toward the end and wraps to 0.
type sieveModel struct {
	capacity int
	order    []uint64
	visited  map[uint64]bool
	hand     int // -1: start at the oldest
}

func (m *sieveModel) access(key uint64) (bool, []uint64) {
	if _, ok := m.visited[key]; ok {
		m.visited[key] = true
		return true, nil
	}
	var evicted []uint64
	if len(m.order) == m.capacity {
		i := max(m.hand, 0)
		for m.visited[m.order[i]] {
			m.visited[m.order[i]] = false
			if i++; i == len(m.order) {
				i = 0
			}
		}
		evicted = append(evicted, m.order[i])
		delete(m.visited, m.order[i])
		m.order = slices.Delete(m.order, i, i+1)
		if m.hand = i; i == len(m.order) {
			m.hand = -1
		}
	}
	m.order = append(m.order, key)
	m.visited[key] = false
	return false, evicted
}

func (m *sieveModel) resident() []uint64 {
	r := slices.Clone(m.order)
	slices.Sort(r)
	return r
}

func FuzzSieve(f *testing.F) {
	fuzzAgainst(f,
		func(c int) baseline { return newSieve(c) },
		func(c int) model { return &sieveModel{capacity: c, visited: map[uint64]bool{}, hand: -1} })
}
