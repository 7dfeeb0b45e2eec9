package pool

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
)

func newT(t testing.TB, capacity int, opts *Options) *Pool {
	t.Helper()
	p, err := New(capacity, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Tests may end with segments live (ErrLeaked in the checked build)
		// or latched (ErrBusy: the pool is then left open).
		if err := p.Close(); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrLeaked) && !errors.Is(err, ErrBusy) {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

// pattern returns n bytes that depend on seed, so segments are told apart.
func pattern(n int, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7 + 1)
	}
	return b
}

func commitT(t testing.TB, p *Pool, data []byte) Ref {
	t.Helper()
	r, err := p.Commit(data)
	if err != nil {
		t.Fatalf("commit %d bytes: %v", len(data), err)
	}
	return r
}

func readT(t testing.TB, p *Pool, r Ref) []byte {
	t.Helper()
	b, err := p.Read(r, nil)
	if err != nil {
		t.Fatalf("read %v: %v", r, err)
	}
	return b
}

func infoT(t testing.TB, p *Pool, r Ref) Segment {
	t.Helper()
	s, err := p.Info(r)
	if err != nil {
		t.Fatalf("info %v: %v", r, err)
	}
	return s
}

// verifyT checks every invariant, whatever the build.
func verifyT(t testing.TB, p *Pool) {
	t.Helper()
	h, ok := p.lock()
	if !ok {
		return
	}
	err := p.verify()
	p.unlock(h)
	if err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Used+st.Free != st.Capacity {
		t.Fatalf("Used %d + Free %d != Capacity %d", st.Used, st.Free, st.Capacity)
	}
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// unchanged runs bad, which must fail with want, and checks that the pool's
// space, counters (but for those bad may count) and invariants did not change.
func unchanged(t *testing.T, p *Pool, want error, bad func() error) {
	t.Helper()
	before := p.Stats()
	wantErr(t, bad(), want)
	after := p.Stats()
	after.FailedCommits = before.FailedCommits
	if before != after {
		t.Fatalf("a failed call changed the pool:\nbefore %+v\nafter  %+v", before, after)
	}
	verifyT(t, p)
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, c := range []struct {
		capacity int
		opts     Options
	}{
		{0, Options{}},
		{-1, Options{}},
		{1024, Options{Alignment: 3}},
		{1024, Options{Alignment: -8}},
		{1024, Options{MaxCapacity: 512}},
		{1024, Options{MaxCapacity: -1}},
	} {
		p, err := New(c.capacity, &c.opts)
		if !errors.Is(err, ErrInvalid) || p != nil {
			t.Errorf("New(%d, %+v) = %v, %v; want ErrInvalid", c.capacity, c.opts, p, err)
		}
	}
	p := newT(t, 1024, &Options{MaxCapacity: 1024, Alignment: 64, Name: "ok"})
	if st := p.Stats(); st.Capacity != 1024 || st.MaxCapacity != 1024 || st.Free != 1024 || st.Name != "ok" {
		t.Fatalf("fresh pool stats %+v", st)
	}
	newT(t, 1, nil) // a nil *Options is the zero value
}

func TestCommitReadRoundTrip(t *testing.T) {
	for _, align := range []int{1, 8, 64, 4096} {
		t.Run(fmt.Sprint("align", align), func(t *testing.T) {
			p := newT(t, 1<<20, &Options{Alignment: align})
			var refs []Ref
			sizes := []int{1, 7, 8, 9, 100, 1000, 4096, 5000, 20000}
			for i, n := range sizes {
				refs = append(refs, commitT(t, p, pattern(n, i)))
			}
			used := 0
			for i, r := range refs {
				if got := readT(t, p, r); !bytes.Equal(got, pattern(sizes[i], i)) {
					t.Fatalf("segment %d reads back wrong", i)
				}
				s := infoT(t, p, r)
				if s.Len != sizes[i] || s.Offset%align != 0 || s.Latches != 0 {
					t.Fatalf("segment %d info %+v", i, s)
				}
				used += (sizes[i] + align - 1) &^ (align - 1)
			}
			// Read appends to dst.
			got, err := p.Read(refs[0], []byte("x"))
			if err != nil || !bytes.Equal(got, append([]byte("x"), pattern(1, 0)...)) {
				t.Fatalf("read appending to dst: %q, %v", got, err)
			}
			st := p.Stats()
			if st.Used != used || st.UsedSegments != len(sizes) || st.Commits != len(sizes) || st.Reads != len(sizes)+1 {
				t.Fatalf("stats %+v, want Used %d", st, used)
			}
			verifyT(t, p)
			for _, r := range refs {
				if err := p.Release(r); err != nil {
					t.Fatal(err)
				}
			}
			if st := p.Stats(); st.Used != 0 || st.Free != st.Capacity || st.FreeSegments != 1 || st.Releases != len(sizes) {
				t.Fatalf("after releasing all: %+v", st)
			}
			verifyT(t, p)
		})
	}
}

func TestZeroLengthCommits(t *testing.T) {
	p := newT(t, 64, nil)
	seen := map[Ref]bool{}
	var refs []Ref
	for range 1000 {
		r := commitT(t, p, nil)
		if r == 0 || seen[r] {
			t.Fatalf("zero-length commit returned ref %v, seen before: %v", r, seen[r])
		}
		seen[r] = true
		refs = append(refs, r)
	}
	if st := p.Stats(); st.Used != 0 || st.UsedSegments != 1000 {
		t.Fatalf("1000 zero-length segments: %+v", st)
	}
	// Fill the pool; a zero-length commit still succeeds.
	full := commitT(t, p, pattern(64, 1))
	if _, err := p.Commit([]byte{1}); !errors.Is(err, ErrFull) {
		t.Fatalf("commit to a full pool: %v", err)
	}
	r := commitT(t, p, []byte{})
	if b, err := p.Read(r, []byte("dst")); err != nil || string(b) != "dst" {
		t.Fatalf("reading a zero-length segment: %q, %v", b, err)
	}
	if s := infoT(t, p, r); s.Len != 0 || s.Latches != 0 {
		t.Fatalf("zero-length info %+v", s)
	}
	v, err := p.Latch(r)
	if err != nil || len(v) != 0 {
		t.Fatalf("latching a zero-length segment: %d bytes, %v", len(v), err)
	}
	if err := p.Release(r); err != nil { // deferred: latched
		t.Fatal(err)
	}
	if err := p.Unlatch(r); err != nil {
		t.Fatal(err)
	}
	for _, r := range append(refs, full) {
		if err := p.Release(r); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.UsedSegments != 0 || st.Used != 0 || st.PendingReleases != 0 {
		t.Fatalf("after releasing everything: %+v", st)
	}
	verifyT(t, p)
}

func TestBadRefs(t *testing.T) {
	p := newT(t, 4096, nil)
	other := newT(t, 1<<20, nil)
	for range 100 {
		commitT(t, other, []byte("x"))
	}
	foreign := commitT(t, other, []byte("foreign"))
	live := commitT(t, p, []byte("live"))
	stale := commitT(t, p, []byte("stale"))
	if err := p.Release(stale); err != nil {
		t.Fatal(err)
	}
	reused := commitT(t, p, []byte("reused")) // takes stale's slot, a new generation
	if reused.index() != stale.index() || reused == stale {
		t.Fatalf("slot not reused: %v then %v", stale, reused)
	}
	for _, r := range []Ref{0, stale, foreign, Ref(1 << 40), ^Ref(0)} {
		t.Run(r.String(), func(t *testing.T) {
			unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Read(r, nil); return err })
			unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Latch(r); return err })
			unchanged(t, p, ErrUnknownRef, func() error { return p.Unlatch(r) })
			unchanged(t, p, ErrUnknownRef, func() error { return p.Release(r) })
			unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Info(r); return err })
		})
	}
	if got := readT(t, p, reused); string(got) != "reused" {
		t.Fatalf("stale ref operations disturbed the slot's new segment: %q", got)
	}
	// Double release.
	if err := p.Release(live); err != nil {
		t.Fatal(err)
	}
	unchanged(t, p, ErrUnknownRef, func() error { return p.Release(live) })
	unchanged(t, p, ErrInvalid, func() error { _, _, err := p.Reserve(-1); return err })
}

func TestLatchCounting(t *testing.T) {
	p := newT(t, 4096, nil)
	r := commitT(t, p, []byte("latched"))
	unchanged(t, p, ErrNotLatched, func() error { return p.Unlatch(r) })
	var views [][]byte
	for i := 1; i <= 3; i++ {
		v, err := p.Latch(r)
		if err != nil {
			t.Fatal(err)
		}
		views = append(views, v)
		if got := infoT(t, p, r).Latches; got != i {
			t.Fatalf("after %d latches Info says %d", i, got)
		}
	}
	for _, v := range views {
		if string(v) != "latched" || unsafe.SliceData(v) != unsafe.SliceData(views[0]) {
			t.Fatalf("views differ: %q", v)
		}
	}
	for i := 2; i >= 0; i-- {
		if err := p.Unlatch(r); err != nil {
			t.Fatal(err)
		}
		if got := infoT(t, p, r).Latches; got != i {
			t.Fatalf("unlatching down to %d: Info says %d", i, got)
		}
	}
	unchanged(t, p, ErrNotLatched, func() error { return p.Unlatch(r) })
	if st := p.Stats(); st.Latches != 3 {
		t.Fatalf("Stats.Latches %d, want 3", st.Latches)
	}
}

func TestReleaseWhileLatched(t *testing.T) {
	p := newT(t, 4096, nil)
	r := commitT(t, p, pattern(100, 1))
	after := commitT(t, p, pattern(100, 2)) // keeps r from being the last extent
	v1, _ := p.Latch(r)
	v2, _ := p.Latch(r)
	used := p.Stats().Used
	if err := p.Release(r); err != nil {
		t.Fatal(err)
	}
	// The ref is dead at once for everything but Unlatch...
	unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Read(r, nil); return err })
	unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Latch(r); return err })
	unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Info(r); return err })
	unchanged(t, p, ErrUnknownRef, func() error { return p.Release(r) })
	// ...while its space and bytes stay until the last latch drops.
	if st := p.Stats(); st.Used != used || st.PendingReleases != 1 || st.UsedSegments != 2 {
		t.Fatalf("released latched segment: %+v", st)
	}
	if p.Compact(); !bytes.Equal(v1, pattern(100, 1)) || !bytes.Equal(v2, v1) {
		t.Fatal("view of a released latched segment changed")
	}
	if err := p.Unlatch(r); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Used != used || st.PendingReleases != 1 {
		t.Fatalf("after the first of two unlatches: %+v", st)
	}
	if err := p.Unlatch(r); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Used != used-104 || st.PendingReleases != 0 || st.UsedSegments != 1 {
		t.Fatalf("after the last unlatch: %+v", st)
	}
	unchanged(t, p, ErrUnknownRef, func() error { return p.Unlatch(r) })
	if !bytes.Equal(readT(t, p, after), pattern(100, 2)) {
		t.Fatal("neighbour damaged")
	}
	verifyT(t, p)
}

func TestReserve(t *testing.T) {
	p := newT(t, 4096, nil)
	r, b, err := p.Reserve(5)
	if err != nil || len(b) != 5 {
		t.Fatalf("reserve: %d bytes, %v", len(b), err)
	}
	copy(b, "hello")
	unchanged(t, p, ErrBusy, func() error { _, err := p.Read(r, nil); return err })
	unchanged(t, p, ErrBusy, func() error { _, err := p.Latch(r); return err })
	if s := infoT(t, p, r); s.Latches != 1 || s.Len != 5 {
		t.Fatalf("reserved segment info %+v", s)
	}
	if moved := p.Compact(); moved != 0 {
		t.Fatalf("compaction moved %d bytes", moved)
	}
	if err := p.Unlatch(r); err != nil {
		t.Fatal(err)
	}
	if got := readT(t, p, r); string(got) != "hello" {
		t.Fatalf("published segment reads %q", got)
	}
	// Released before it is published: freed by the publishing Unlatch.
	r2, _, _ := p.Reserve(10)
	if err := p.Release(r2); err != nil {
		t.Fatal(err)
	}
	if err := p.Unlatch(r2); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.UsedSegments != 1 || st.PendingReleases != 0 || st.Commits != 2 {
		t.Fatalf("stats %+v", st)
	}
	unchanged(t, p, ErrTooLarge, func() error { _, _, err := p.Reserve(8192); return err })
	verifyT(t, p)
}

func TestTooLargeAndFull(t *testing.T) {
	p := newT(t, 1024, nil)
	unchanged(t, p, ErrTooLarge, func() error { _, err := p.Commit(make([]byte, 1025)); return err })
	commitT(t, p, make([]byte, 1000))
	unchanged(t, p, ErrFull, func() error { _, err := p.Commit(make([]byte, 100)); return err })
	if st := p.Stats(); st.FailedCommits != 2 || st.Commits != 1 {
		t.Fatalf("stats %+v", st)
	}
	g := newT(t, 1024, &Options{MaxCapacity: 64 << 10})
	unchanged(t, g, ErrTooLarge, func() error { _, err := g.Commit(make([]byte, 65<<10)); return err })
	r := commitT(t, g, pattern(60<<10, 1)) // grows
	if st := g.Stats(); st.Capacity < 60<<10 || st.Grows == 0 {
		t.Fatalf("no growth: %+v", st)
	}
	unchanged(t, g, ErrFull, func() error { _, err := g.Commit(make([]byte, 8<<10)); return err })
	unchanged(t, g, ErrFull, func() error { _, _, err := g.Reserve(8 << 10); return err })
	unchanged(t, g, ErrFull, func() error { _, err := g.Commit(make([]byte, 16<<10+1)); return err })
	if st := g.Stats(); st.FailedCommits != 4 {
		t.Fatalf("FailedCommits %d, want 4", st.FailedCommits)
	}
	if !bytes.Equal(readT(t, g, r), pattern(60<<10, 1)) {
		t.Fatal("data changed by growth")
	}
}

// TestExhaustionThenCompaction is Opteryx's scenario: a pool too fragmented
// for a commit that its free bytes would hold compacts and succeeds.
func TestExhaustionThenCompaction(t *testing.T) {
	p := newT(t, 1000, &Options{Alignment: 1})
	var refs []Ref
	for i := range 10 {
		refs = append(refs, commitT(t, p, pattern(100, i)))
	}
	if _, err := p.Commit([]byte{1}); !errors.Is(err, ErrFull) {
		t.Fatalf("commit to a full pool: %v", err)
	}
	for i := 0; i < 10; i += 2 {
		if err := p.Release(refs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.Free != 500 || st.LargestFree != 100 || st.FreeSegments != 5 || st.Fragmentation != 0.8 {
		t.Fatalf("fragmented pool: %+v", st)
	}
	big := commitT(t, p, pattern(300, 99))
	st := p.Stats()
	if st.Compactions != 1 || st.BytesMoved == 0 || st.Free != 200 || st.FreeSegments != 1 {
		t.Fatalf("after the compacting commit: %+v", st)
	}
	for i := 1; i < 10; i += 2 {
		if !bytes.Equal(readT(t, p, refs[i]), pattern(100, i)) {
			t.Fatalf("segment %d damaged by compaction", i)
		}
	}
	if !bytes.Equal(readT(t, p, big), pattern(300, 99)) {
		t.Fatal("big segment wrong")
	}
	verifyT(t, p)
}

// TestAdjacentHolesServeCommit: releasing neighbours coalesces them, and a
// commit of their joint size lands there without moving anything.
func TestAdjacentHolesServeCommit(t *testing.T) {
	p := newT(t, 8*104, nil)
	var refs []Ref
	for i := range 8 {
		refs = append(refs, commitT(t, p, pattern(100, i))) // 104 bytes each with alignment 8
	}
	hole := infoT(t, p, refs[2]).Offset
	for _, i := range []int{3, 2, 5} { // 2 and 3 coalesce; 5 stays apart
		if err := p.Release(refs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.FreeSegments != 2 || st.LargestFree != 208 {
		t.Fatalf("holes: %+v", st)
	}
	r := commitT(t, p, pattern(208, 9))
	if off := infoT(t, p, r).Offset; off != hole {
		t.Fatalf("commit of the coalesced size went to %d, not the hole at %d", off, hole)
	}
	if st := p.Stats(); st.Compactions != 0 || st.BytesMoved != 0 {
		t.Fatalf("data moved: %+v", st)
	}
	for _, i := range []int{0, 1, 4, 6, 7} {
		if !bytes.Equal(readT(t, p, refs[i]), pattern(100, i)) {
			t.Fatalf("segment %d damaged", i)
		}
	}
	verifyT(t, p)
}

// TestLatchedSegmentsStayThroughCompaction: latched segments keep their
// offset, latch count and bytes, and the free space around them stays
// usable (Opteryx loses it).
func TestLatchedSegmentsStayThroughCompaction(t *testing.T) {
	p := newT(t, 1000, &Options{Alignment: 1})
	var refs []Ref
	for i := range 10 {
		refs = append(refs, commitT(t, p, pattern(100, i)))
	}
	pinned := map[int]Segment{}
	views := map[int][]byte{}
	for _, i := range []int{3, 7} {
		views[i], _ = p.Latch(refs[i])
		pinned[i] = infoT(t, p, refs[i])
	}
	for _, i := range []int{0, 2, 4, 5, 8} {
		if err := p.Release(refs[i]); err != nil {
			t.Fatal(err)
		}
	}
	free := p.Stats().Free
	moved := p.Compact()
	if moved == 0 {
		t.Fatal("nothing moved")
	}
	for i, want := range pinned {
		if got := infoT(t, p, refs[i]); got != want {
			t.Fatalf("latched segment %d: %+v before compaction, %+v after", i, want, got)
		}
		if !bytes.Equal(views[i], pattern(100, i)) {
			t.Fatalf("latched segment %d's view changed", i)
		}
	}
	for _, i := range []int{1, 6, 9} {
		if !bytes.Equal(readT(t, p, refs[i]), pattern(100, i)) {
			t.Fatalf("segment %d damaged", i)
		}
	}
	st := p.Stats()
	if st.Free != free {
		t.Fatalf("compaction lost free space: %d before, %d after", free, st.Free)
	}
	// Segment 1 slid to 0, leaving a 200-byte hole before 3 (at 300); 6 and
	// 9 slid to 400 and 500, leaving 100 bytes before 7 (at 700): all usable.
	var got []Ref
	for range 5 {
		got = append(got, commitT(t, p, make([]byte, 100)))
	}
	if _, err := p.Commit([]byte{1}); !errors.Is(err, ErrFull) {
		t.Fatalf("pool should be exactly full: %v", err)
	}
	for i, want := range pinned {
		if infoT(t, p, refs[i]) != want {
			t.Fatalf("latched segment %d moved", i)
		}
	}
	_ = got
	verifyT(t, p)
}

// TestStaggeredLatchesOverCompaction latches segments at different times
// between compactions and checks every offset before and after.
func TestStaggeredLatchesOverCompaction(t *testing.T) {
	p := newT(t, 64<<10, nil)
	var refs []Ref
	for i := range 64 {
		refs = append(refs, commitT(t, p, pattern(100+i*10, i)))
	}
	released := map[int]bool{}
	latched := map[int]Segment{}
	for round := range 6 {
		for i := round; i < 64; i += 7 { // release a few
			if _, l := latched[i]; !released[i] && !l {
				if err := p.Release(refs[i]); err != nil {
					t.Fatal(err)
				}
				released[i] = true
			}
		}
		i := (round*11 + 5) % 64 // latch one more
		if !released[i] {
			if _, l := latched[i]; !l {
				if _, err := p.Latch(refs[i]); err != nil {
					t.Fatal(err)
				}
				latched[i] = infoT(t, p, refs[i])
			}
		}
		p.Compact()
		for j, want := range latched {
			if got := infoT(t, p, refs[j]); got != want {
				t.Fatalf("round %d: latched %d moved: %+v -> %+v", round, j, want, got)
			}
		}
		for j := range 64 {
			if !released[j] && !bytes.Equal(readT(t, p, refs[j]), pattern(100+j*10, j)) {
				t.Fatalf("round %d: segment %d damaged", round, j)
			}
		}
		verifyT(t, p)
	}
}

// TestLatchCompactUnlatchCycles repeats latch, compact, unlatch with
// integrity checks; unlatched segments then move down.
func TestLatchCompactUnlatchCycles(t *testing.T) {
	p := newT(t, 32<<10, nil)
	var refs []Ref
	for i := range 100 {
		refs = append(refs, commitT(t, p, pattern(64+i, i)))
	}
	live := map[int]bool{}
	for i := range refs {
		live[i] = true
	}
	for cycle := range 50 {
		k := (cycle * 37) % 100
		if live[k] {
			_ = p.Release(refs[k])
			delete(live, k)
			refs[k] = commitT(t, p, pattern(64+k, k+cycle*100))
			live[k] = true
		}
		j := (cycle * 13) % 100
		before := infoT(t, p, refs[j])
		v, err := p.Latch(refs[j])
		if err != nil {
			t.Fatal(err)
		}
		p.Compact()
		if after := infoT(t, p, refs[j]); after.Offset != before.Offset || after.Latches != before.Latches+1 {
			t.Fatalf("cycle %d: latched %+v -> %+v", cycle, before, after)
		}
		want := readT(t, p, refs[j])
		if !bytes.Equal(v, want) {
			t.Fatalf("cycle %d: view and copy differ", cycle)
		}
		if err := p.Unlatch(refs[j]); err != nil {
			t.Fatal(err)
		}
		p.Compact()
		verifyT(t, p)
	}
	if st := p.Stats(); st.FreeSegments != 1 {
		t.Fatalf("with nothing latched, compaction should leave one free extent: %+v", st)
	}
}

// TestGrowthKeepsViews: a latched view stays valid, at the same address,
// while the pool grows in place.
func TestGrowthKeepsViews(t *testing.T) {
	p := newT(t, 4096, &Options{MaxCapacity: 16 << 20})
	r := commitT(t, p, pattern(1000, 1))
	v, _ := p.Latch(r)
	var refs []Ref
	for i := range 1000 {
		refs = append(refs, commitT(t, p, pattern(10000, i)))
	}
	st := p.Stats()
	if st.Grows == 0 || st.Capacity < 10<<20 {
		t.Fatalf("no growth: %+v", st)
	}
	w, _ := p.Latch(r)
	if unsafe.SliceData(v) != unsafe.SliceData(w) || !bytes.Equal(v, pattern(1000, 1)) {
		t.Fatal("latched view moved or changed during growth")
	}
	for i, r := range refs {
		if !bytes.Equal(readT(t, p, r), pattern(10000, i)) {
			t.Fatalf("segment %d wrong", i)
		}
	}
	verifyT(t, p)
}

func TestLargeSegments(t *testing.T) {
	p := newT(t, 4<<20, nil)
	for _, n := range []int{optimisticReadMax, optimisticReadMax + 1, 16 << 10, 16<<10 + 1, 1 << 20} {
		r := commitT(t, p, pattern(n, n))
		if !bytes.Equal(readT(t, p, r), pattern(n, n)) {
			t.Fatalf("%d bytes read back wrong", n)
		}
		if s := infoT(t, p, r); s.Latches != 0 || s.Len != n {
			t.Fatalf("%d-byte segment %+v", n, s)
		}
	}
	if st := p.Stats(); st.Reads != 5 {
		t.Fatalf("reads %d", st.Reads)
	}
}

func TestCloseRules(t *testing.T) {
	p, err := New(4096, &Options{Name: "closing"})
	if err != nil {
		t.Fatal(err)
	}
	r := commitT(t, p, []byte("data"))
	if _, err := p.Latch(r); err != nil {
		t.Fatal(err)
	}
	unchanged(t, p, ErrBusy, p.Close)
	if err := p.Unlatch(r); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(r); err != nil {
		t.Fatal(err)
	}
	r2 := commitT(t, p, []byte("more"))
	before := p.Stats()
	err = p.Close()
	if check.On {
		wantErr(t, err, ErrLeaked) // r2 was never released
	} else if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"commit":  func() error { _, err := p.Commit([]byte("x")); return err },
		"zero":    func() error { _, err := p.Commit(nil); return err },
		"reserve": func() error { _, _, err := p.Reserve(1); return err },
		"read":    func() error { _, err := p.Read(r2, nil); return err },
		"latch":   func() error { _, err := p.Latch(r2); return err },
		"unlatch": func() error { return p.Unlatch(r2) },
		"release": func() error { return p.Release(r2) },
		"info":    func() error { _, err := p.Info(r2); return err },
		"close":   p.Close,
	} {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
	if p.Compact() != 0 {
		t.Error("compaction after Close")
	}
	st := p.Stats()
	if st.Commits != before.Commits || st.Capacity != 0 || st.Name != "closing" {
		t.Fatalf("stats after Close %+v", st)
	}
}

func TestCheckedBuildPoisonsAndReportsLeaks(t *testing.T) {
	p, err := New(4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := commitT(t, p, pattern(100, 1))
	commitT(t, p, pattern(100, 2))
	off := infoT(t, p, a).Offset
	if err := p.Release(a); err != nil {
		t.Fatal(err)
	}
	freed := p.view(uint64(off), 100)
	want := pattern(100, 1)
	if check.On {
		want = bytes.Repeat([]byte{check.Poison}, 100)
	}
	if !bytes.Equal(freed, want) {
		t.Fatalf("released bytes: %v", freed[:8])
	}
	err = p.Close()
	if check.On {
		wantErr(t, err, ErrLeaked)
		if want := "1 live segments, 104 bytes"; !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Fatalf("leak report %q lacks %q", err, want)
		}
	} else if err != nil {
		t.Fatal(err)
	}
}

func TestStatsFields(t *testing.T) {
	// Every field of Stats is either checked somewhere in these tests or
	// listed here; this catches a field added without a test.
	want := []string{"Capacity", "Used", "Free", "UsedSegments", "FreeSegments", "LargestFree",
		"Fragmentation", "Commits", "FailedCommits", "Reads", "Latches", "Releases", "Compactions",
		"BytesMoved", "Grows", "MaxCapacity", "Alignment", "MetaBytes", "PendingReleases", "Name"}
	var got []string
	for f := range reflect.TypeFor[Stats]().Fields() {
		got = append(got, f.Name)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Stats fields %v", got)
	}
}

// TestVerifyCatchesCorruption breaks each kind of invariant by hand and
// checks that the checked build's verifier notices.
func TestVerifyCatchesCorruption(t *testing.T) {
	p := newT(t, 4096, nil)
	var refs []Ref
	for i := range 8 {
		refs = append(refs, commitT(t, p, pattern(100, i)))
	}
	_ = p.Release(refs[2])
	_ = p.Release(refs[5])
	commitT(t, p, nil) // a zero-length segment
	verifyT(t, p)
	hole := p.slot(refs[2].index())
	seg := p.slot(refs[3].index())
	for name, corrupt := range map[string]func() func(){
		"hole bytes":    func() func() { p.holeBytes += 8; return func() { p.holeBytes -= 8 } },
		"prev link":     func() func() { old := seg.prev; seg.prev = none; return func() { seg.prev = old } },
		"offset":        func() func() { seg.off += 8; return func() { seg.off -= 8 } },
		"top":           func() func() { p.top += 8; return func() { p.top -= 8 } },
		"hole size":     func() func() { hole.n += 8; return func() { hole.n -= 8 } },
		"bitmap":        func() func() { old := p.free.flMap; p.free.flMap = 0; return func() { p.free.flMap = old } },
		"live count":    func() func() { p.commits++; return func() { p.commits-- } },
		"pending count": func() func() { p.pending++; return func() { p.pending-- } },
		"free stack": func() func() {
			old := p.freeSlot
			p.freeSlot = refs[0].index()
			return func() { p.freeSlot = old }
		},
	} {
		restore := corrupt()
		if err := p.verify(); err == nil {
			t.Errorf("%s: corruption not detected", name)
		}
		restore()
		verifyT(t, p)
	}
}
