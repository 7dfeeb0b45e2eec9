package pool

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/offheap/offheap/internal/fuzzops"
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

// poolModel is FuzzPool's reference for a Pool: just the list of its
// segments and the refs released so far. Each method does one operation to
// the pool and the model and checks the pool's answer; check compares the
// two after every operation.
type poolModel struct {
	t    *testing.T
	p    *Pool
	ops  *fuzzops.Reader // for picking a segment
	segs []*mseg
	dead []Ref // released refs, for stale-ref checks
}

// pick returns a segment chosen by the input among those ok accepts, or nil.
func (m *poolModel) pick(ok func(*mseg) bool) *mseg {
	var c []*mseg
	for _, s := range m.segs {
		if ok(s) {
			c = append(c, s)
		}
	}
	if len(c) == 0 {
		return nil
	}
	return c[m.ops.Intn(len(c))]
}

// drop removes s from the model, its ref now dead.
func (m *poolModel) drop(s *mseg) {
	m.segs = slices.DeleteFunc(m.segs, func(x *mseg) bool { return x == s })
	m.dead = append(m.dead, s.ref)
}

func readable(s *mseg) bool { return !s.released && !s.unpub }

// commit commits n bytes, or reserves them (latched, unpublished) and writes
// them in place. Only more than MaxCapacity may be ErrTooLarge; ErrFull may
// happen and changes nothing.
func (m *poolModel) commit(n, id int, reserve bool) {
	data := pattern(n, id)
	var r Ref
	var b []byte
	var err error
	if reserve {
		r, b, err = m.p.Reserve(n)
	} else {
		r, err = m.p.Commit(data)
	}
	if errors.Is(err, ErrFull) || errors.Is(err, ErrTooLarge) {
		if n <= 8192 && errors.Is(err, ErrTooLarge) {
			m.t.Fatalf("commit %d bytes: %v", n, err)
		}
		return
	}
	if err != nil {
		m.t.Fatal(err)
	}
	s := &mseg{ref: r, data: data}
	if reserve {
		copy(b, data)
		s.latches, s.unpub, s.view = 1, true, b
		s.off = infoOf(m.t, m.p, r).Offset
	}
	m.segs = append(m.segs, s)
}

// read reads a readable segment by copy.
func (m *poolModel) read() {
	if s := m.pick(readable); s != nil {
		got, err := m.p.Read(s.ref, nil)
		if err != nil || !bytes.Equal(got, s.data) {
			m.t.Fatalf("read %v: %v", s.ref, err)
		}
	}
}

// latch latches a readable segment and keeps its view and offset.
func (m *poolModel) latch() {
	if s := m.pick(readable); s != nil {
		v, err := m.p.Latch(s.ref)
		if err != nil || !bytes.Equal(v, s.data) {
			m.t.Fatalf("latch %v: %v", s.ref, err)
		}
		s.latches++
		s.view = v
		s.off = infoOf(m.t, m.p, s.ref).Offset
	}
}

// unlatch drops a latch; the last one publishes a reserved segment and
// reclaims a released one.
func (m *poolModel) unlatch() {
	if s := m.pick(func(s *mseg) bool { return s.latches > 0 }); s != nil {
		if err := m.p.Unlatch(s.ref); err != nil {
			m.t.Fatalf("unlatch %v: %v", s.ref, err)
		}
		if s.latches--; s.latches == 0 {
			s.unpub, s.view = false, nil
			if s.released {
				m.drop(s)
			}
		}
	}
}

// release releases a segment; a latched one stays in the model until its
// last Unlatch.
func (m *poolModel) release() {
	if s := m.pick(func(s *mseg) bool { return !s.released }); s != nil {
		if err := m.p.Release(s.ref); err != nil {
			m.t.Fatalf("release %v: %v", s.ref, err)
		}
		if s.released = true; s.latches == 0 {
			m.drop(s)
		}
	}
}

// compact compacts: latched segments stay put.
func (m *poolModel) compact() {
	m.p.Compact()
	for _, s := range m.segs {
		if s.latches > 0 && !s.released {
			if got := infoOf(m.t, m.p, s.ref); got.Offset != s.off || got.Latches != s.latches {
				m.t.Fatalf("latched %v: offset %d latches %d, want %d and %d", s.ref, got.Offset, got.Latches, s.off, s.latches)
			}
		}
	}
}

// badRef uses r, or a dead ref when there is one: Read, Release and Unlatch
// must fail with ErrUnknownRef and change nothing.
func (m *poolModel) badRef(r Ref) {
	if len(m.dead) > 0 {
		r = m.dead[m.ops.Intn(len(m.dead))]
	}
	if slices.ContainsFunc(m.segs, func(s *mseg) bool { return s.ref == r }) {
		return
	}
	before := m.p.Stats()
	if _, err := m.p.Read(r, nil); !errors.Is(err, ErrUnknownRef) {
		m.t.Fatalf("read of bad ref %v: %v", r, err)
	}
	if err := m.p.Release(r); !errors.Is(err, ErrUnknownRef) {
		m.t.Fatalf("release of bad ref %v: %v", r, err)
	}
	if err := m.p.Unlatch(r); !errors.Is(err, ErrUnknownRef) {
		m.t.Fatalf("unlatch of bad ref %v: %v", r, err)
	}
	if after := m.p.Stats(); after != before {
		m.t.Fatalf("bad ref changed stats: %+v -> %+v", before, after)
	}
}

// check compares the pool's counts with the model's and every latched view
// with its data.
func (m *poolModel) check() {
	m.t.Helper()
	st := m.p.Stats()
	pending := 0
	for _, s := range m.segs {
		if s.released {
			pending++
		}
		if s.view != nil && !bytes.Equal(s.view, s.data) {
			m.t.Fatalf("latched view of %v changed", s.ref)
		}
	}
	switch {
	case st.Used+st.Free != st.Capacity:
		m.t.Fatalf("Used %d + Free %d != Capacity %d", st.Used, st.Free, st.Capacity)
	case st.UsedSegments != len(m.segs) || st.PendingReleases != pending:
		m.t.Fatalf("stats %+v; model has %d segments, %d pending", st, len(m.segs), pending)
	case st.LargestFree > st.Free || st.Fragmentation < 0 || st.Fragmentation >= 1:
		m.t.Fatalf("free space stats %+v", st)
	}
}

// drain drops every latch and releases every segment, reading each one
// last, and checks the pool is then empty, sound and closes cleanly.
func (m *poolModel) drain() {
	for _, s := range m.segs {
		for range s.latches {
			if err := m.p.Unlatch(s.ref); err != nil {
				m.t.Fatal(err)
			}
		}
		if !s.released {
			if got, err := m.p.Read(s.ref, nil); err != nil || !bytes.Equal(got, s.data) {
				m.t.Fatalf("final read %v: %v", s.ref, err)
			}
			if err := m.p.Release(s.ref); err != nil {
				m.t.Fatal(err)
			}
		}
	}
	if st := m.p.Stats(); st.Used != 0 || st.UsedSegments != 0 || st.PendingReleases != 0 {
		m.t.Fatalf("after releasing everything: %+v", st)
	}
	verifyT(m.t, m.p)
	if err := m.p.Close(); err != nil {
		m.t.Fatal(err)
	}
}

// FuzzPool runs random operation sequences (commit, reserve, read, latch,
// unlatch, release, compact, growth through commits, bad refs) against
// poolModel, checking data, latch counts, that latched segments never move,
// and the Stats invariants.
func FuzzPool(f *testing.F) {
	f.Add([]byte{0, 10, 0, 20, 2, 0, 4, 0, 5, 1, 1, 3, 0, 8})
	f.Add([]byte{7, 3, 0, 200, 0, 200, 0, 200, 4, 1, 5, 0, 90, 0, 255, 6, 2, 3, 8})
	f.Add([]byte{0, 0, 0, 0, 2, 1, 4, 1, 3, 1, 0, 50, 0, 50, 4, 2, 5, 8, 1, 2})
	f.Add(bytes.Repeat([]byte{0, 90, 2, 3, 4, 5, 5}, 20))
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := fuzzops.New(data)
		p, err := New(1024, &Options{Alignment: 1 << ops.Intn(5), MaxCapacity: 8192})
		if err != nil {
			t.Fatal(err)
		}
		m := &poolModel{t: t, p: p, ops: ops}
		for id := 0; ops.More(); id++ {
			switch op := ops.Intn(9); op {
			case 0, 7:
				n := ops.Byte()
				m.commit(n*(1+ops.Intn(8)), id, op == 7)
			case 1:
				m.read()
			case 2:
				m.latch()
			case 3:
				m.unlatch()
			case 4:
				m.release()
			case 5:
				m.compact()
			case 6:
				hi := ops.Byte()
				m.badRef(Ref(hi<<32 | ops.Byte()))
			case 8:
				verifyT(t, p)
			}
			m.check()
		}
		m.drain()
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
