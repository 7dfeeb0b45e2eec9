package arrowalloc

import "testing"

// FuzzSpace runs random place / free sequences on a small ring against a
// model: a bool per page and the head, placing at the first free window in
// ring order from the head. So a run never overlaps a taken page, a place
// fails only when no window is free, and released pages are reused last.
func FuzzSpace(f *testing.F) {
	f.Add(uint8(40), []byte{3, 3, 3, 128, 2, 129, 5, 7, 7, 130, 131, 4})
	f.Add(uint8(64), []byte{63, 1, 128, 2, 1, 1, 129, 9})
	f.Add(uint8(130), []byte{60, 60, 128, 10, 9, 129, 70, 2})
	f.Fuzz(func(t *testing.T, npages uint8, ops []byte) {
		pages := int(npages)%200 + 2
		s := newSpace(pages)
		model := make([]bool, pages)
		model[0] = true
		head := 1
		type run struct{ p, n int }
		var runs []run
		for _, op := range ops {
			if op >= 128 { // free a live run
				if len(runs) == 0 {
					continue
				}
				j := int(op-128) % len(runs)
				r := runs[j]
				s.free(r.p, r.n)
				for i := range r.n {
					model[r.p+i] = false
				}
				runs = append(runs[:j], runs[j+1:]...)
			} else {
				n := int(op)%(pages+1) + 1
				want, wantOK := firstFit(model, head, n)
				got, ok := s.place(n)
				if ok != wantOK || ok && got != want {
					t.Fatalf("place(%d) from head %d = %d, %v; want %d, %v", n, head, got, ok, want, wantOK)
				}
				if ok {
					for i := range n {
						model[got+i] = true
					}
					head = got + n
					runs = append(runs, run{got, n})
				}
			}
			for p := range pages {
				if s.taken(p) != model[p] {
					t.Fatalf("page %d taken %v, model %v", p, s.taken(p), model[p])
				}
			}
		}
	})
}

// firstFit is the model's placement: the first window of n free pages in
// ring order from head (the pages from head to the end, then from 0).
func firstFit(taken []bool, head, n int) (int, bool) {
	free := func(p int) bool {
		for i := range n {
			if taken[p+i] {
				return false
			}
		}
		return true
	}
	for p := head; p+n <= len(taken); p++ {
		if free(p) {
			return p, true
		}
	}
	for p := 0; p < head && p+n <= len(taken); p++ {
		if free(p) {
			return p, true
		}
	}
	return 0, false
}

func TestBits(t *testing.T) {
	b := make([]uint64, 3)
	setRange(b, 60, 70, true)
	setRange(b, 130, 131, true)
	for _, c := range []struct{ got, want int }{
		{nextSet(b, 0, 192), 60}, {nextSet(b, 61, 192), 61}, {nextSet(b, 70, 192), 130},
		{nextSet(b, 70, 130), -1}, {nextSet(b, 131, 192), -1},
		{nextClear(b, 60, 192), 70}, {nextClear(b, 0, 192), 0}, {nextClear(b, 130, 131), 131},
		{prevSet(b, 191), 130}, {prevSet(b, 129), 69}, {prevSet(b, 60), 60}, {prevSet(b, 59), -1},
	} {
		if c.got != c.want {
			t.Errorf("got %d, want %d", c.got, c.want)
		}
	}
}
