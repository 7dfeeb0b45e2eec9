package arena

import (
	"errors"
	"testing"

	"github.com/offheap/offheap/internal/fuzzops"
)

// newSpanSet returns a span set of npages pages with its metadata on the Go
// heap, made touchable 16 pages at a time.
func newSpanSet(npages uint32) *spanSet {
	s := &spanSet{
		meta:   make([]spanEntry, npages),
		used:   make([]uint64, (npages+63)/64),
		npages: npages,
	}
	s.grow = func(n uint32) (uint32, error) { return min((n+15)&^15, npages), nil }
	return s
}

// spanModel is the reference for spanSet: who owns each page, and whether
// it was ever handed out.
type spanModel struct {
	t     *testing.T
	s     *spanSet
	owner []int // 0 free, else the id of the span holding the page
	ever  []bool
	live  []uint32 // heads of the used spans
	next  int
}

func newSpanModel(t *testing.T, npages uint32) *spanModel {
	return &spanModel{t: t, s: newSpanSet(npages), owner: make([]int, npages), ever: make([]bool, npages)}
}

func (m *spanModel) alloc(n uint32) {
	p, reused, ok, err := m.s.alloc(n)
	if err != nil {
		m.t.Fatal(err)
	}
	if !ok {
		if run := m.longestFreeRun(); run >= int(n) {
			m.t.Fatalf("alloc(%d) failed with a free run of %d pages", n, run)
		}
		return
	}
	if uint64(p)+uint64(n) > uint64(len(m.owner)) {
		m.t.Fatalf("alloc(%d) = %d: past the end", n, p)
	}
	m.next++
	wasUsed := false
	for q := p; q < p+n; q++ {
		if m.owner[q] != 0 {
			m.t.Fatalf("alloc(%d) = %d: page %d already held by span %d", n, p, q, m.owner[q])
		}
		m.owner[q] = m.next
		wasUsed = wasUsed || m.ever[q]
		m.ever[q] = true
	}
	if reused != wasUsed {
		m.t.Fatalf("alloc(%d) = %d: reused %v, want %v", n, p, reused, wasUsed)
	}
	m.live = append(m.live, p)
}

func (m *spanModel) free(i int) {
	if len(m.live) == 0 {
		return
	}
	i %= len(m.live)
	p := m.live[i]
	n, err := m.s.usedHead(p)
	if err != nil {
		m.t.Fatalf("usedHead(%d) of a live span: %v", p, err)
	}
	m.s.free(p)
	for q := p; q < p+n; q++ {
		m.owner[q] = 0
	}
	m.live[i] = m.live[len(m.live)-1]
	m.live = m.live[:len(m.live)-1]
}

// classify checks usedHead of page p against the model.
func (m *spanModel) classify(p uint32) {
	p %= uint32(len(m.owner))
	_, err := m.s.usedHead(p)
	switch {
	case m.owner[p] == 0:
		if !errors.Is(err, ErrDoubleFree) {
			m.t.Fatalf("usedHead(%d) of a free page: %v", p, err)
		}
	case p > 0 && m.owner[p-1] == m.owner[p]:
		if !errors.Is(err, ErrForeign) {
			m.t.Fatalf("usedHead(%d) inside a used span: %v", p, err)
		}
	default:
		if err != nil {
			m.t.Fatalf("usedHead(%d) of a used head: %v", p, err)
		}
	}
}

func (m *spanModel) longestFreeRun() int {
	best, run := 0, 0
	for _, o := range m.owner {
		if o == 0 {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

func (m *spanModel) check() {
	if err := m.s.verify(); err != nil {
		m.t.Fatal(err)
	}
	used := 0
	for _, o := range m.owner {
		if o != 0 {
			used++
		}
	}
	if m.s.usedSpans != len(m.live) || m.s.usedPages != used {
		m.t.Fatalf("books: %d spans, %d pages; model %d, %d", m.s.usedSpans, m.s.usedPages, len(m.live), used)
	}
}

// FuzzSpans runs random allocs and frees of spans against the model.
func FuzzSpans(f *testing.F) {
	f.Add([]byte{1, 3, 1, 5, 0, 0, 1, 9, 2, 4, 0, 1})
	f.Add([]byte{1, 200, 1, 200, 1, 200, 0, 1, 0, 0, 1, 100, 1, 7, 2, 77})
	f.Add([]byte{1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 0, 1, 0, 3, 0, 0, 1, 6, 1, 9, 0, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newSpanModel(t, 600)
		ops := fuzzops.New(data)
		for ops.More() {
			switch ops.Intn(3) {
			case 0:
				m.free(ops.Byte())
			case 1:
				m.alloc(uint32(ops.Byte())%90 + 1)
			case 2:
				m.classify(uint32(ops.Byte()) * 3)
			}
			m.check()
		}
		for len(m.live) > 0 {
			m.free(0)
			m.check()
		}
		if m.s.top != 0 || m.s.freeSpans != 0 {
			t.Fatalf("all freed: top %d, %d free spans", m.s.top, m.s.freeSpans)
		}
	})
}

// TestSpanLists checks the size ranges: listOf is monotonic, and every span
// of fitList(n) or a later list holds n pages.
func TestSpanLists(t *testing.T) {
	// smallest returns the fewest pages a span of list l holds.
	smallest := func(l int) uint64 {
		if l < 8 {
			return uint64(l)
		}
		fl, sl := (l-8)/8+3, (l-8)%8
		return uint64(8+sl) << (fl - 3)
	}
	for n := uint64(1); n < 1<<22; n++ {
		l, f := listOf(n), fitList(n)
		if l >= nSpanLists || listOf(n-1) > l || smallest(l) > n || smallest(l+1) <= n {
			t.Fatalf("listOf(%d) = %d", n, l)
		}
		if f < nSpanLists && smallest(f) < n || f > l+1 {
			t.Fatalf("fitList(%d) = %d, whose spans hold %d pages", n, f, smallest(f))
		}
	}
	if l := listOf(1<<32 - 1); l != nSpanLists-1 {
		t.Fatalf("listOf(2^32-1) = %d, want %d", l, nSpanLists-1)
	}
}
