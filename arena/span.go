// Spans: the page-run allocator behind large blocks. It carves runs of
// whole pages (spans) out of one reservation, finds a free span in O(1) and
// merges a freed span with its free neighbours in O(1), with metadata that
// lives outside the Go heap and grows with the pages used.

package arena

import (
	"fmt"
	"math/bits"

	"github.com/offheap/offheap/internal/check"
)

// spanSet hands out spans: runs of pages of one reservation, numbered from 0.
//
// Pages below top are tiled by spans, each used (a large block, possibly
// with its release in flight) or free; pages from top on (the wilderness)
// were never handed out, or were given back when the span that ended at top
// was freed. Free spans are indexed TLSF-style: one list per size range
// (exact for 1-7 pages, then 8 ranges per power of two), a bitmap of
// non-empty lists, and a request rounded up to the next range boundary, so
// that any span of the first non-empty list at or above it fits: a good fit
// in O(1), preferred to the wilderness so that top stays low.
//
// Per page, an 8-byte entry (meta) and one bit (used) describe the tiling: a
// span's first page (its head) holds its length; a free span longer than
// one page also holds it in its last page (its tail), where the span freed
// after it looks for its start; every other entry is zero. The used bit of
// every page of a used span is set, so that any page is classified at once:
// the head of a used span, a page inside one, or a free page. So the
// metadata costs 8 bytes and a bit per page below the highest top, touched
// only at span boundaries.
//
// # Invariants
//
//   - the spans from page 0 tile [0, top): each head is kindUsed or kindFree with n >= 1;
//   - entries inside a span, and every entry from top to ready, are zero;
//   - a free span of n > 1 pages has a kindTail entry with n at its last page;
//   - no two free spans are adjacent, and no free span ends at top;
//   - a free span of n pages is in lists[listOf(n)] at the position its head records;
//   - the used bit is set exactly for the pages of used spans;
//   - usedSpans, usedPages, freeSpans and freePages count what the tiling holds.
//
// Each change checks the invariants around it in the offheapcheck build;
// verify walks the whole tiling (tests call it).
type spanSet struct {
	meta     []spanEntry          // one per page of the reservation; only [0, ready) may be touched
	used     []uint64             // one bit per page; only the bits below ready may be touched
	npages   uint32               // pages in the reservation
	ready    uint32               // pages whose metadata may be touched; raised by grow
	top      uint32               // first page of the wilderness
	everTop  uint32               // highest top so far: pages from it on were never handed out
	lists    [nSpanLists][]uint32 // heads of the free spans, per size range
	nonEmpty [(nSpanLists + 63) / 64]uint64

	// grow makes the metadata of at least the first n pages touchable and
	// returns how many pages are.
	grow func(n uint32) (uint32, error)

	usedSpans, usedPages, freeSpans, freePages int
}

// spanEntry is a page's metadata.
type spanEntry struct {
	n    uint32 // pages of the span this page heads (or, kindTail, ends); 0 elsewhere
	info uint32 // kind in the low bits; a free head's position in its list above them
}

// Entry kinds, in spanEntry.info.
const (
	kindNone      = 0 // inside a span, or in the wilderness
	kindUsed      = 1 // head of a used span
	kindFree      = 2 // head of a free span
	kindTail      = 3 // last page of a free span of 2 pages or more
	kindMask      = 3
	kindReleasing = 4 // flag on a kindUsed head: its pages are being given back (see freeLarge)
	posShift      = 3
)

// nSpanLists is the number of free lists: one per length of 1-7 pages (list
// 0 is unused), then 8 per power of two from 8 to 2^32-1 pages.
const nSpanLists = 8 + 29*8

// listOf returns the list that holds free spans of n pages, 1 <= n < 2^32.
func listOf(n uint64) int {
	if n < 8 {
		return int(n)
	}
	fl := bits.Len64(n) - 1 // 3 or more
	return 8 + (fl-3)*8 + int(n>>(fl-3))&7
}

// fitList returns the first list whose every span holds n pages (up to
// nSpanLists, where no list is).
func fitList(n uint64) int {
	if n >= 8 {
		n += 1<<(bits.Len64(n)-4) - 1 // up to the next range boundary
	}
	if n >= 1<<32 {
		return nSpanLists
	}
	return listOf(n)
}

// alloc takes a span of n pages (n >= 1) and returns its first page, and
// whether any of its pages were handed out before (the caller may need to
// clear them). ok is false when nothing fits: no free span and too little
// wilderness. err is growing the metadata's failure; nothing changed then.
func (s *spanSet) alloc(n uint32) (p uint32, reused, ok bool, err error) {
	if l := s.firstList(fitList(uint64(n))); l < nSpanLists {
		return s.carve(s.lists[l][len(s.lists[l])-1], n), true, true, nil
	}
	if uint64(s.top)+uint64(n) <= uint64(s.npages) {
		return s.extend(n)
	}
	// Too little wilderness: a span of n's own list may still fit.
	for _, h := range s.lists[listOf(uint64(n))] {
		if s.meta[h].n >= n {
			return s.carve(h, n), true, true, nil
		}
	}
	return 0, false, false, nil
}

// firstList returns the first non-empty list at or after l, or nSpanLists.
func (s *spanSet) firstList(l int) int {
	for w := l / 64; w < len(s.nonEmpty); w++ {
		m := s.nonEmpty[w]
		if w == l/64 {
			m &= ^uint64(0) << (l % 64)
		}
		if m != 0 {
			return w*64 + bits.TrailingZeros64(m)
		}
	}
	return nSpanLists
}

// extend takes n pages from the wilderness.
func (s *spanSet) extend(n uint32) (p uint32, reused, ok bool, err error) {
	if end := s.top + n; end > s.ready {
		r, err := s.grow(end)
		if err != nil {
			return 0, false, false, err
		}
		s.ready = r
	}
	p = s.top
	s.top += n
	reused = p < s.everTop
	s.everTop = max(s.everTop, s.top)
	s.markUsed(p, n)
	return p, reused, true, nil
}

// carve takes n pages from the start of the free span headed by h, leaving
// the rest free.
func (s *spanSet) carve(h, n uint32) uint32 {
	m := s.meta[h].n
	s.unlist(h)
	s.meta[h] = spanEntry{}
	if m > 1 {
		s.meta[h+m-1] = spanEntry{} // the old tail
	}
	if m > n {
		s.addFree(h+n, m-n)
	}
	s.markUsed(h, n)
	return h
}

// markUsed makes pages [p, p+n), whose entries are zero, a used span.
func (s *spanSet) markUsed(p, n uint32) {
	s.meta[p] = spanEntry{n: n, info: kindUsed}
	s.setUsed(p, n, true)
	s.usedSpans++
	s.usedPages += int(n)
	s.checkAround(p)
}

// free makes the used span headed by p free, merging it with free
// neighbours, or with the wilderness if it ends at top.
func (s *spanSet) free(p uint32) {
	n := s.meta[p].n
	if check.On {
		check.Invariant(s.meta[p].info&kindMask == kindUsed, "span %d: free of a %d-page span of kind %d", p, n, s.meta[p].info)
	}
	s.meta[p] = spanEntry{}
	s.setUsed(p, n, false)
	s.usedSpans--
	s.usedPages -= int(n)
	start, end := p, p+n
	if start > 0 && !s.isUsed(start-1) { // the tail (or single page) of a free span
		t := start - 1
		start -= s.meta[t].n
		s.unlist(start)
		s.meta[t], s.meta[start] = spanEntry{}, spanEntry{}
	}
	if end < s.top && !s.isUsed(end) { // the head of a free span
		rn := s.meta[end].n
		s.unlist(end)
		s.meta[end], s.meta[end+rn-1] = spanEntry{}, spanEntry{}
		end += rn
	}
	if end == s.top {
		s.top = start
		return
	}
	s.addFree(start, end-start)
	s.checkAround(start)
}

// addFree makes pages [p, p+n), whose entries are zero, a listed free span.
func (s *spanSet) addFree(p, n uint32) {
	l := listOf(uint64(n))
	s.meta[p] = spanEntry{n: n, info: kindFree | uint32(len(s.lists[l]))<<posShift}
	if n > 1 {
		s.meta[p+n-1] = spanEntry{n: n, info: kindTail}
	}
	s.lists[l] = append(s.lists[l], p)
	s.nonEmpty[l/64] |= 1 << (l % 64)
	s.freeSpans++
	s.freePages += int(n)
}

// unlist takes the free span headed by p off its list (its entries stay).
func (s *spanSet) unlist(p uint32) {
	e := s.meta[p]
	l, i := listOf(uint64(e.n)), e.info>>posShift
	list := s.lists[l]
	last := list[len(list)-1]
	list[i] = last
	s.meta[last].info = kindFree | i<<posShift
	s.lists[l] = list[:len(list)-1]
	if len(list) == 1 {
		s.nonEmpty[l/64] &^= 1 << (l % 64)
	}
	s.freeSpans--
	s.freePages -= int(e.n)
}

func (s *spanSet) isUsed(p uint32) bool { return s.used[p/64]&(1<<(p%64)) != 0 }

// setUsed sets (on) or clears the used bits of pages [p, p+n).
func (s *spanSet) setUsed(p, n uint32, on bool) {
	for n > 0 {
		b := p % 64
		k := min(n, 64-b)
		mask := ^uint64(0) >> (64 - k) << b
		if on {
			s.used[p/64] |= mask
		} else {
			s.used[p/64] &^= mask
		}
		p, n = p+k, n-k
	}
}

// usedHead returns the length of the used span headed by p, or why p heads
// none: ErrDoubleFree for a free page (or a span being released), ErrForeign
// for a page inside a used span. p is below npages.
func (s *spanSet) usedHead(p uint32) (uint32, error) {
	if p >= s.top || !s.isUsed(p) {
		return 0, ErrDoubleFree
	}
	switch e := s.meta[p]; e.info {
	case kindUsed:
		return e.n, nil
	case kindUsed | kindReleasing:
		return 0, ErrDoubleFree
	}
	return 0, ErrForeign
}

// checkAround checks, in the offheapcheck build, the span headed by p and
// its neighbours.
func (s *spanSet) checkAround(p uint32) {
	if !check.On {
		return
	}
	err := s.checkSpan(p)
	if err == nil && p > 0 {
		q := p - 1
		if !s.isUsed(q) {
			q -= s.meta[q].n - 1
		} else {
			for s.meta[q].info&kindMask != kindUsed { // back to the used head
				q--
			}
		}
		err = s.checkSpan(q)
	}
	if end := p + s.meta[p].n; err == nil && end < s.top {
		err = s.checkSpan(end)
	}
	check.Invariant(err == nil, "%v", err)
}

// checkSpan checks the span headed by p against the invariants.
func (s *spanSet) checkSpan(p uint32) error {
	e := s.meta[p]
	kind, n := e.info&kindMask, e.n
	if n == 0 || uint64(p)+uint64(n) > uint64(s.top) || kind != kindUsed && kind != kindFree {
		return fmt.Errorf("span %d: entry %+v, top %d", p, e, s.top)
	}
	for q := p + 1; q < p+n; q++ {
		if inner := s.meta[q]; inner != (spanEntry{}) && (kind != kindFree || q != p+n-1 || inner != spanEntry{n: n, info: kindTail}) {
			return fmt.Errorf("span %d+%d: entry of page %d is %+v", p, n, q, inner)
		}
	}
	for q := p; q < p+n; q++ {
		if s.isUsed(q) != (kind == kindUsed) {
			return fmt.Errorf("span %d+%d of kind %d: used bit of page %d", p, n, kind, q)
		}
	}
	if kind == kindUsed {
		return nil
	}
	if n > 1 && s.meta[p+n-1] != (spanEntry{n: n, info: kindTail}) {
		return fmt.Errorf("free span %d+%d: tail %+v", p, n, s.meta[p+n-1])
	}
	if list, i := s.lists[listOf(uint64(n))], e.info>>posShift; int(i) >= len(list) || list[i] != p {
		return fmt.Errorf("free span %d+%d: not at %d of its list", p, n, i)
	}
	if p+n >= s.top || !s.isUsed(p+n) || p > 0 && !s.isUsed(p-1) {
		return fmt.Errorf("free span %d+%d: a free neighbour, or at top %d", p, n, s.top)
	}
	return nil
}

// verify walks the whole tiling and returns the first invariant that does
// not hold (tests call it, in any build).
func (s *spanSet) verify() error {
	var used, usedPages, free, freePages int
	for p := uint32(0); p < s.top; p += s.meta[p].n {
		if err := s.checkSpan(p); err != nil {
			return err
		}
		if n := int(s.meta[p].n); s.meta[p].info&kindMask == kindUsed {
			used, usedPages = used+1, usedPages+n
		} else {
			free, freePages = free+1, freePages+n
		}
	}
	for p := s.top; p < s.ready; p++ {
		if s.meta[p] != (spanEntry{}) || s.isUsed(p) {
			return fmt.Errorf("wilderness page %d: entry %+v, used %v", p, s.meta[p], s.isUsed(p))
		}
	}
	listed := 0
	for l, list := range s.lists {
		listed += len(list)
		if (len(list) > 0) != (s.nonEmpty[l/64]&(1<<(l%64)) != 0) {
			return fmt.Errorf("list %d: %d spans, bitmap wrong", l, len(list))
		}
	}
	if used != s.usedSpans || usedPages != s.usedPages || free != s.freeSpans || freePages != s.freePages || listed != free {
		return fmt.Errorf("books: used %d/%d pages, free %d/%d pages, listed %d; counted used %d/%d, free %d/%d",
			s.usedSpans, s.usedPages, s.freeSpans, s.freePages, listed, used, usedPages, free, freePages)
	}
	return nil
}
