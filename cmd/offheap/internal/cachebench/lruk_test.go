package cachebench

import (
	"slices"
	"testing"
)

// TestLRUKHandWorked follows Opteryx's BufferPool by hand at capacity 3:
// every hit and insertion is a tick; an entry hit at least once (two
// accesses) is evicted first, the one with the oldest penultimate access
// first; only when there is none, the oldest entry accessed once.
func TestLRUKHandWorked(t *testing.T) {
	runSteps(t, newLRUK(3), []step{
		{a, false, nil}, {b, false, nil}, {c, false, nil}, // ticks 1 2 3
		{b, true, nil},          // b: 2, 4
		{d, false, []uint64{b}}, // b is the only entry accessed twice: evicted, though a is older. d: 5
		{a, true, nil},          // a: 1, 6
		{c, true, nil},          // c: 3, 7
		{a, true, nil},          // a: 6, 8
		{e, false, []uint64{c}}, // penultimates a 6, c 3: c. e: 9
		{d, true, nil},          // d: 5, 10
		{f, false, []uint64{d}}, // d 5 before a 6. f: 11
		{g, false, []uint64{a}}, // a is still the only one accessed twice. g: 12
		{h, false, []uint64{e}}, // none accessed twice: the oldest, e (9; f 11, g 12)
		{f, true, nil}, {g, true, nil}, {h, true, nil},
	})
}

// lrukModel is Opteryx's LRU_K (k=2) as its code reads: an insertion-
// ordered dict of slots (an access moves its key to the end), a history
// of each key's last two ticks, and an eviction that scans every slot,
// first for the keys with two accesses (smallest penultimate tick), then
// for the others (smallest first tick).
type lrukModel struct {
	capacity int
	slots    []uint64
	history  map[uint64][]int64
	clock    int64
}

func (m *lrukModel) touch(key uint64) {
	m.clock++
	h := append(m.history[key], m.clock)
	if len(h) > 2 {
		h = h[1:]
	}
	m.history[key] = h
	if i := slices.Index(m.slots, key); i >= 0 {
		m.slots = slices.Delete(m.slots, i, i+1)
	}
	m.slots = append(m.slots, key)
}

func (m *lrukModel) access(key uint64) (bool, []uint64) {
	if _, ok := m.history[key]; ok {
		m.touch(key)
		return true, nil
	}
	var evicted []uint64
	if len(m.slots) >= m.capacity { // the BufferPool evicts one entry before it commits
		evicted = []uint64{m.victim()}
		i := slices.Index(m.slots, evicted[0])
		m.slots = slices.Delete(m.slots, i, i+1)
		delete(m.history, evicted[0])
	}
	m.touch(key)
	return false, evicted
}

func (m *lrukModel) victim() uint64 {
	var cand uint64
	found, candTime := false, int64(-1)
	for _, k := range m.slots {
		if h := m.history[k]; len(h) >= 2 && (!found || h[0] < candTime) {
			cand, candTime, found = k, h[0], true
		}
	}
	if found {
		return cand
	}
	for _, k := range m.slots {
		if h := m.history[k]; !found || h[0] < candTime {
			cand, candTime, found = k, h[0], true
		}
	}
	return cand
}

func (m *lrukModel) resident() []uint64 {
	r := slices.Clone(m.slots)
	slices.Sort(r)
	return r
}

func FuzzLRUK(f *testing.F) {
	fuzzAgainst(f,
		func(c int) baseline { return newLRUK(c) },
		func(c int) model { return &lrukModel{capacity: c, history: map[uint64][]int64{}} })
}
