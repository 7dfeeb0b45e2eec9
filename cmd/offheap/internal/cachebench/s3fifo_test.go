package cachebench

import (
	"slices"
	"testing"
)

// TestS3FIFOSizes checks the queue sizes against libCacheSim's
// truncations of 10% (small) and 90% (ghost) of the capacity.
func TestS3FIFOSizes(t *testing.T) {
	for _, tc := range []struct{ capacity, main, ghost int }{
		{28, 26, 25}, {250, 225, 225}, {1000, 900, 900}, {2123, 1911, 1910}, {400000, 360000, 360000},
		{5, 4, 4}, // a small queue of at least one entry
	} {
		s := newS3FIFO(tc.capacity)
		if s.capacity != tc.capacity || s.mainCap != tc.main || s.ghost.capacity != tc.ghost {
			t.Errorf("capacity %d: capacity %d, main %d, ghost %d; want main %d, ghost %d",
				tc.capacity, s.capacity, s.mainCap, s.ghost.capacity, tc.main, tc.ghost)
		}
	}
}

// TestS3FIFOHandWorked follows S3-FIFO's rules (as libCacheSim has them)
// by hand with a small queue of 2, a main queue of 3 and a ghost of 2.
// Queues are written oldest first.
func TestS3FIFOHandWorked(t *testing.T) {
	runSteps(t, newS3FIFOSized(2, 3, 2), []step{
		{a, false, nil}, {b, false, nil},
		{a, true, nil}, {a, true, nil}, // a: 2 hits in small
		{c, false, nil}, {d, false, nil}, {e, false, nil}, // small a b c d e: full
		{f, false, []uint64{b}}, // a (2 hits) moves to main; b leaves for the ghost. small c d e f, main a, ghost b
		{b, false, []uint64{c}}, // b from the ghost: c leaves for the ghost, b enters main. small d e f, main a b, ghost c
		{a, true, nil},          // a: 1 in main
		{d, true, nil},          // d: 1 in small, not enough to move
		{g, false, []uint64{d}}, // small e f g, ghost c d
		{h, false, []uint64{e}}, // the full ghost drops c: ghost d e; small f g h
		{c, false, []uint64{f}}, // c was dropped by the ghost: a new key. ghost e f; small g h c
		{e, false, []uint64{g}}, // e from the ghost to main: main a b e; ghost f g; small h c
		{a, true, nil},          // a: 2
		{b, true, nil},          // b: 1
		{i, false, []uint64{h}}, // main is at its share: small evicts h. ghost g h; small c i
		{c, true, nil},          // c: 1
		{c, true, nil},          // c: 2
		{j, false, []uint64{i}}, // c moves to main (a b e c: over its share), i leaves. ghost h i; small j
		{k, false, []uint64{e}}, // main over its share evicts: a (2 -> 1) and b (1 -> 0) go round, e leaves. main c a b; small j k
		{e, false, []uint64{j}}, // e, not in the ghost, is new: small evicts j. ghost i j; small k e
		{i, false, []uint64{k}}, // i from the ghost to main: main c a b i; small e; ghost j k
		{f, false, []uint64{c}}, // main over its share: c (0 hits) leaves. main a b i; small e f
		{a, true, nil}, {b, true, nil}, {i, true, nil}, {e, true, nil}, {f, true, nil},
	})
}

// TestS3FIFOFrequencyCap checks that hits beyond 3 earn no more trips
// round the main queue: a, hit 5 times in main, survives 3 evictions from
// main and leaves at the 4th. Small 1, main 1, no ghost.
func TestS3FIFOFrequencyCap(t *testing.T) {
	twice := func(key uint64) []step { return []step{{key, true, nil}, {key, true, nil}} }
	steps := []step{
		{a, false, nil}, {a, true, nil}, {a, true, nil},
		{b, false, nil},                                                                // small a b
		{c, false, []uint64{b}},                                                        // a (2 hits) moves to main; b leaves
		{a, true, nil}, {a, true, nil}, {a, true, nil}, {a, true, nil}, {a, true, nil}, // a: 5 hits in main
		{d, false, []uint64{c}},
	}
	steps = append(steps, twice(d)...)
	steps = append(steps, step{e, false, []uint64{d}}) // d moves to main, which evicts: a goes round (3 -> 2), d leaves
	steps = append(steps, step{f, false, []uint64{e}})
	steps = append(steps, twice(f)...)
	steps = append(steps, step{g, false, []uint64{f}}) // a round again (2 -> 1)
	steps = append(steps, twice(g)...)
	steps = append(steps, step{h, false, []uint64{g}}) // a round again (1 -> 0)
	steps = append(steps, twice(h)...)
	steps = append(steps, step{i, false, []uint64{a}}) // a leaves
	runSteps(t, newS3FIFOSized(1, 1, 0), steps)
}

// s3Model is S3-FIFO over slices (oldest first), a line-by-line reading of
// libCacheSim's S3FIFO.c: unbounded frequencies, capped where they are used.
type s3Model struct {
	capacity, mainCap, ghostCap int
	small, main, ghost          []uint64
	freq                        map[uint64]int
}

func newS3Model(capacity int) *s3Model {
	small := max(int(float64(capacity)*0.10), 1)
	return &s3Model{capacity: capacity, mainCap: capacity - small, ghostCap: int(float64(capacity) * 0.90), freq: map[uint64]int{}}
}

func (m *s3Model) access(key uint64) (bool, []uint64) {
	if slices.Contains(m.small, key) {
		m.freq[key]++
		return true, nil
	}
	ghostHit := false
	if i := slices.Index(m.ghost, key); i >= 0 {
		m.ghost = slices.Delete(m.ghost, i, i+1)
		ghostHit = true
	}
	if slices.Contains(m.main, key) {
		m.freq[key]++
		return true, nil
	}
	var evicted []uint64
	for len(m.small)+len(m.main)+1 > m.capacity {
		if len(m.main) > m.mainCap || len(m.small) == 0 {
			evicted = append(evicted, m.evictMain()...)
		} else {
			evicted = append(evicted, m.evictSmall()...)
		}
	}
	m.freq[key] = 0
	if ghostHit {
		m.main = append(m.main, key)
	} else {
		m.small = append(m.small, key)
	}
	return false, evicted
}

func (m *s3Model) evictSmall() []uint64 {
	for len(m.small) > 0 {
		t := m.small[0]
		m.small = m.small[1:]
		if m.freq[t] >= 2 {
			m.freq[t] = 0
			m.main = append(m.main, t)
			continue
		}
		if m.ghostCap > 0 && !slices.Contains(m.ghost, t) {
			for len(m.ghost) >= m.ghostCap {
				m.ghost = m.ghost[1:]
			}
			m.ghost = append(m.ghost, t)
		}
		delete(m.freq, t)
		return []uint64{t}
	}
	return nil
}

func (m *s3Model) evictMain() []uint64 {
	for len(m.main) > 0 {
		t := m.main[0]
		m.main = m.main[1:]
		if f := m.freq[t]; f >= 1 {
			m.freq[t] = min(f, 3) - 1
			m.main = append(m.main, t)
			continue
		}
		delete(m.freq, t)
		return []uint64{t}
	}
	return nil
}

func (m *s3Model) resident() []uint64 {
	r := slices.Concat(m.small, m.main)
	slices.Sort(r)
	return r
}

func FuzzS3FIFO(f *testing.F) {
	fuzzAgainst(f,
		func(c int) baseline { return newS3FIFO(c) },
		func(c int) model { return newS3Model(c) })
}
