// The page ring of a Checked allocator: which pages are taken, where each
// buffer's record starts, and where the next run of pages goes.

package arrowalloc

import "math/bits"

// space hands out runs of pages from a ring in address order. A search starts
// where the last run ended and wraps around at the end, skipping live runs,
// so a released run is handed out again only after the search has gone once
// round the whole ring: that is the quarantine that keeps a stale pointer
// faulting instead of reading the next owner's bytes.
//
// Invariants:
//   - a page's live bit is set exactly when it belongs to a live run (its data
//     pages and its guard page) or is page 0, which is never handed out;
//   - 0 <= head <= pages;
//   - start bits mark the first page of every run that still has a record;
//     records never overlap, so the run holding a page is the one whose start
//     is the nearest at or below it.
type space struct {
	pages  int      // pages in the ring
	head   int      // where the next search starts
	live   []uint64 // a bit per page: taken
	starts []uint64 // a bit per page: a record's run starts here
}

func newSpace(pages int) space {
	words := (pages + 63) / 64
	s := space{pages: pages, head: 1, live: make([]uint64, words), starts: make([]uint64, words)}
	s.live[0] = 1 // page 0 is the address of every empty buffer
	return s
}

// place takes n free pages, the first such run at or after head (wrapping
// once), and returns its first page; false, with nothing changed, if no run
// of n pages is free.
func (s *space) place(n int) (int, bool) {
	if n <= 0 || n > s.pages {
		return 0, false
	}
	start := s.head
	for scanned := 0; scanned <= s.pages+n; {
		if s.head+n > s.pages {
			scanned += s.pages - s.head
			s.head = 0
			continue
		}
		busy := nextSet(s.live, s.head, s.head+n)
		if busy < 0 {
			p := s.head
			setRange(s.live, p, p+n, true)
			s.head = p + n
			return p, true
		}
		// No window starting in [head, busy] avoids busy: skip its live run.
		end := nextClear(s.live, busy, s.pages)
		scanned += end - s.head
		s.head = end
	}
	s.head = start
	return 0, false
}

// free gives the n pages at p back to the ring.
func (s *space) free(p, n int) { setRange(s.live, p, p+n, false) }

// taken reports whether page p is taken.
func (s *space) taken(p int) bool { return s.live[p/64]&(1<<(p%64)) != 0 }

// nextSet returns the first set bit in [from, to), or -1.
func nextSet(b []uint64, from, to int) int {
	for i := from; i < to; {
		w := b[i/64] >> (i % 64)
		if w != 0 {
			if j := i + bits.TrailingZeros64(w); j < to {
				return j
			}
			return -1
		}
		i = (i/64 + 1) * 64
	}
	return -1
}

// nextClear returns the first clear bit in [from, to), or to.
func nextClear(b []uint64, from, to int) int {
	for i := from; i < to; {
		w := ^b[i/64] >> (i % 64)
		if w != 0 {
			return min(i+bits.TrailingZeros64(w), to)
		}
		i = (i/64 + 1) * 64
	}
	return to
}

// prevSet returns the last set bit at or below at, or -1.
func prevSet(b []uint64, at int) int {
	for i := at; i >= 0; {
		w := b[i/64] << (63 - i%64)
		if w != 0 {
			return i - bits.LeadingZeros64(w)
		}
		i = i/64*64 - 1
	}
	return -1
}

// setRange sets or clears the bits of [from, to).
func setRange(b []uint64, from, to int, v bool) {
	for i := from; i < to; i++ {
		if v {
			b[i/64] |= 1 << (i % 64)
		} else {
			b[i/64] &^= 1 << (i % 64)
		}
	}
}
