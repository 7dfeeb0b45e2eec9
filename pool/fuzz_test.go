package pool

import (
	"bytes"
	"errors"
	"testing"
)

// mseg is the model of one segment.
type mseg struct {
	ref      Ref
	data     []byte
	latches  int
	released bool   // released while latched: dead but for Unlatch
	unpub    bool   // reserved, not yet published
	view     []byte // a latched view, checked against data
	off      int    // offset while latched
}

// FuzzPool runs random operation sequences (commit, reserve, read, latch,
// unlatch, release, compact, growth through commits, bad refs) against a
// model that is just the list of segments, and checks data, latch counts,
// that latched segments never move, and the Stats invariants.
func FuzzPool(f *testing.F) {
	f.Add([]byte{0, 10, 0, 20, 2, 0, 4, 0, 5, 1, 1, 3, 0, 8})
	f.Add([]byte{7, 3, 0, 200, 0, 200, 0, 200, 4, 1, 5, 0, 90, 0, 255, 6, 2, 3, 8})
	f.Add([]byte{0, 0, 0, 0, 2, 1, 4, 1, 3, 1, 0, 50, 0, 50, 4, 2, 5, 8, 1, 2})
	f.Add(bytes.Repeat([]byte{0, 90, 2, 3, 4, 5, 5}, 20))
	f.Fuzz(func(t *testing.T, ops []byte) {
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			v := int(ops[0])
			ops = ops[1:]
			return v
		}
		align := 1 << (next() % 5)
		p, err := New(1024, &Options{Alignment: align, MaxCapacity: 8192})
		if err != nil {
			t.Fatal(err)
		}
		var segs []*mseg
		var dead []Ref // released refs, for stale-ref checks
		pick := func(ok func(*mseg) bool) *mseg {
			var c []*mseg
			for _, s := range segs {
				if ok(s) {
					c = append(c, s)
				}
			}
			if len(c) == 0 {
				return nil
			}
			return c[next()%len(c)]
		}
		drop := func(s *mseg) {
			for i, x := range segs {
				if x == s {
					segs = append(segs[:i], segs[i+1:]...)
				}
			}
			dead = append(dead, s.ref)
		}
		readable := func(s *mseg) bool { return !s.released && !s.unpub }
		for id := 0; len(ops) > 0; id++ {
			switch op := next() % 9; op {
			case 0, 7: // commit, or reserve
				n := next() * (1 + next()%8)
				data := pattern(n, id)
				var r Ref
				var b []byte
				if op == 0 {
					r, err = p.Commit(data)
				} else {
					r, b, err = p.Reserve(n)
				}
				if errors.Is(err, ErrFull) || errors.Is(err, ErrTooLarge) {
					if n <= 8192 && errors.Is(err, ErrTooLarge) {
						t.Fatalf("commit %d bytes: %v", n, err)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				s := &mseg{ref: r, data: data}
				if op == 7 {
					copy(b, data)
					s.latches, s.unpub, s.view = 1, true, b
					s.off = infoOf(t, p, r).Offset
				}
				segs = append(segs, s)
			case 1: // read
				if s := pick(readable); s != nil {
					got, err := p.Read(s.ref, nil)
					if err != nil || !bytes.Equal(got, s.data) {
						t.Fatalf("read %v: %v", s.ref, err)
					}
				}
			case 2: // latch
				if s := pick(readable); s != nil {
					v, err := p.Latch(s.ref)
					if err != nil || !bytes.Equal(v, s.data) {
						t.Fatalf("latch %v: %v", s.ref, err)
					}
					s.latches++
					s.view = v
					s.off = infoOf(t, p, s.ref).Offset
				}
			case 3: // unlatch
				if s := pick(func(s *mseg) bool { return s.latches > 0 }); s != nil {
					if err := p.Unlatch(s.ref); err != nil {
						t.Fatalf("unlatch %v: %v", s.ref, err)
					}
					if s.latches--; s.latches == 0 {
						s.unpub, s.view = false, nil
						if s.released {
							drop(s)
						}
					}
				}
			case 4: // release
				if s := pick(func(s *mseg) bool { return !s.released }); s != nil {
					if err := p.Release(s.ref); err != nil {
						t.Fatalf("release %v: %v", s.ref, err)
					}
					if s.released = true; s.latches == 0 {
						drop(s)
					}
				}
			case 5: // compact: latched segments stay put
				p.Compact()
				for _, s := range segs {
					if s.latches > 0 && !s.released {
						if got := infoOf(t, p, s.ref); got.Offset != s.off || got.Latches != s.latches {
							t.Fatalf("latched %v: offset %d latches %d, want %d and %d", s.ref, got.Offset, got.Latches, s.off, s.latches)
						}
					}
				}
			case 6: // bad refs fail and change nothing
				r := Ref(next()<<32 | next())
				if len(dead) > 0 {
					r = dead[next()%len(dead)]
				}
				if isLive(segs, r) {
					continue
				}
				before := p.Stats()
				if _, err := p.Read(r, nil); !errors.Is(err, ErrUnknownRef) {
					t.Fatalf("read of bad ref %v: %v", r, err)
				}
				if err := p.Release(r); !errors.Is(err, ErrUnknownRef) {
					t.Fatalf("release of bad ref %v: %v", r, err)
				}
				if err := p.Unlatch(r); !errors.Is(err, ErrUnknownRef) {
					t.Fatalf("unlatch of bad ref %v: %v", r, err)
				}
				if after := p.Stats(); after != before {
					t.Fatalf("bad ref changed stats: %+v -> %+v", before, after)
				}
			case 8:
				verifyT(t, p)
			}
			checkModel(t, p, segs)
		}
		for _, s := range segs {
			for range s.latches {
				if err := p.Unlatch(s.ref); err != nil {
					t.Fatal(err)
				}
			}
			if !s.released {
				if got, err := p.Read(s.ref, nil); err != nil || !bytes.Equal(got, s.data) {
					t.Fatalf("final read %v: %v", s.ref, err)
				}
				if err := p.Release(s.ref); err != nil {
					t.Fatal(err)
				}
			}
		}
		if st := p.Stats(); st.Used != 0 || st.UsedSegments != 0 || st.PendingReleases != 0 {
			t.Fatalf("after releasing everything: %+v", st)
		}
		verifyT(t, p)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func infoOf(t *testing.T, p *Pool, r Ref) Segment {
	t.Helper()
	s, err := p.Info(r)
	if err != nil {
		t.Fatalf("info %v: %v", r, err)
	}
	return s
}

func isLive(segs []*mseg, r Ref) bool {
	for _, s := range segs {
		if s.ref == r {
			return true
		}
	}
	return false
}

// checkModel compares the pool's counts with the model's and every
// latched view with its data.
func checkModel(t *testing.T, p *Pool, segs []*mseg) {
	t.Helper()
	st := p.Stats()
	pending := 0
	for _, s := range segs {
		if s.released {
			pending++
		}
		if s.view != nil && !bytes.Equal(s.view, s.data) {
			t.Fatalf("latched view of %v changed", s.ref)
		}
	}
	switch {
	case st.Used+st.Free != st.Capacity:
		t.Fatalf("Used %d + Free %d != Capacity %d", st.Used, st.Free, st.Capacity)
	case st.UsedSegments != len(segs) || st.PendingReleases != pending:
		t.Fatalf("stats %+v; model has %d segments, %d pending", st, len(segs), pending)
	case st.LargestFree > st.Free || st.Fragmentation < 0 || st.Fragmentation >= 1:
		t.Fatalf("free space stats %+v", st)
	}
}
