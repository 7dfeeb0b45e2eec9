package pool

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
)

// Regression tests for the promise that a Ref never reaches the wrong
// segment: not another pool's, not a later one in a retired slot, and that a
// live Ref racing Close is told the pool closed, not that it is unknown.

// TestForeignRefs: two pools used alike must not take each other's Refs.
// Before Refs carried an identity of their pool, the two handed out equal
// Refs and B's Release(refFromA) freed B's own segment.
func TestForeignRefs(t *testing.T) {
	a, b := newT(t, 4096, nil), newT(t, 4096, nil)
	var ra, rb []Ref
	for i := range 8 {
		ra = append(ra, commitT(t, a, pattern(100, i)))
		rb = append(rb, commitT(t, b, pattern(100, 100+i)))
	}
	for _, i := range []int{2, 5} { // move some generations on, alike
		for _, c := range []struct {
			p    *Pool
			refs []Ref
			seed int
		}{{a, ra, 0}, {b, rb, 100}} {
			if err := c.p.Release(c.refs[i]); err != nil {
				t.Fatal(err)
			}
			c.refs[i] = commitT(t, c.p, pattern(100, c.seed+i))
		}
	}
	for i, r := range ra {
		unchanged(t, b, ErrUnknownRef, func() error { _, err := b.Read(r, nil); return err })
		unchanged(t, b, ErrUnknownRef, func() error { _, err := b.Latch(r); return err })
		unchanged(t, b, ErrUnknownRef, func() error { return b.Unlatch(r) })
		unchanged(t, b, ErrUnknownRef, func() error { return b.Release(r) })
		unchanged(t, b, ErrUnknownRef, func() error { _, err := b.Info(r); return err })
		if !bytes.Equal(readT(t, b, rb[i]), pattern(100, 100+i)) {
			t.Fatalf("b's segment %d changed", i)
		}
		if !bytes.Equal(readT(t, a, r), pattern(100, i)) {
			t.Fatalf("a's segment %d changed", i)
		}
	}
}

// TestLiveRefRacingCloseIsClosed: Read and Latch of a live Ref racing Close
// report ErrClosed, never ErrUnknownRef. Close drops the slot table's pages,
// so a lock-free reader that found the pool open just before, and was then
// preempted, reads a zeroed state word; that used to be reported as an
// unknown ref. With one P, Close runs only when a worker is preempted, at
// any instruction, so some rounds close the pool inside that window.
func TestLiveRefRacingCloseIsClosed(t *testing.T) {
	budget := 3 * time.Second
	if testing.Short() {
		budget = 500 * time.Millisecond
	}
	if !check.On { // the checked build's Read and Latch take the lock: no window, and with one P its waiters convoy
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	}
	rounds := 0
	for end := time.Now().Add(budget); time.Now().Before(end); rounds++ {
		closeRacingReaders(t, rounds)
	}
	t.Logf("%d rounds", rounds)
}

// closeRacingReaders closes a pool while goroutines read and latch its two
// live segments, and checks that each then fails with ErrClosed.
func closeRacingReaders(t *testing.T, round int) {
	p, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	refs := []Ref{commitT(t, p, pattern(100, 1)), commitT(t, p, pattern(5000, 2))} // Read's inlined path, and its careful one
	read := func(r Ref) error { _, err := p.Read(r, nil); return err }
	latch := func(r Ref) error {
		if _, err := p.Latch(r); err != nil {
			return err
		}
		if err := p.Unlatch(r); err != nil { // Close is busy while latched
			t.Errorf("unlatch %v of an open pool: %v", r, err)
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, op := range []func(Ref) error{read, latch} {
		for _, r := range refs {
			wg.Go(func() {
				for {
					if err := op(r); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	time.Sleep(time.Duration(round%4) * 100 * time.Microsecond)
	for err = p.Close(); errors.Is(err, ErrBusy); err = p.Close() {
	}
	if err != nil && !errors.Is(err, ErrLeaked) { // the checked build reports the two live segments
		t.Fatalf("close: %v", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("round %d: a live ref racing Close: %v, want ErrClosed", round, err)
		}
	}
}

// TestRefErrorAfterCloseIsClosed pins the cause of the race above without
// timing: once the pool is closed, a state word that names no segment (as
// the dropped slot table's zeroed words do) means the pool closed.
func TestRefErrorAfterCloseIsClosed(t *testing.T) {
	p, err := New(4096, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := commitT(t, p, pattern(100, 1))
	if err := p.Release(r); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, p.refError("latch", r, 0), ErrClosed)
}

// genBefore sets free slot i's generation to k before the one that marks
// it retired (k = 1: the last a segment may have).
func genBefore(p *Pool, i uint32, k uint32) {
	s := p.slot(i)
	s.word = s.word&^genMask | uint64(p.retiredGen()-k)
}

// capSlots keeps the slot table at the slots already taken, as if it had
// reached its reservation.
func capSlots(p *Pool) {
	p.slots = p.slots[:p.nslots]
	p.slotsReady = uint64(p.nslots)
}

// TestCompactionRetiringHoleSlot: compaction turns holes into free slots and
// then needs slots for the gaps before latched segments. When a hole's slot
// retired at its last generation and no other slot was left, makeHole used
// to take slot 0 (a failed newSlot's result): a retired slot back in use, so
// its generation wrapped and the first Ref ever made in it came back to life.
func TestCompactionRetiringHoleSlot(t *testing.T) {
	p := newT(t, 1024, nil)
	first := commitT(t, p, pattern(100, 0)) // slot 0, at its first generation
	if err := p.Release(first); err != nil {
		t.Fatal(err)
	}
	genBefore(p, first.index(), 2)
	a := commitT(t, p, pattern(100, 1)) // slot 0, two generations before it retires
	b := commitT(t, p, pattern(100, 2))
	c := commitT(t, p, pattern(100, 3))
	d := commitT(t, p, pattern(100, 4)) // keeps c from being the last extent
	if a.index() != first.index() {
		t.Fatalf("slot not reused: %v then %v", first, a)
	}
	if _, err := p.Latch(c); err != nil {
		t.Fatal(err)
	}
	if err := p.Release(a); err != nil { // a hole at the start, at the slot's last usable generation
		t.Fatal(err)
	}
	capSlots(p)
	if moved := p.Compact(); moved == 0 { // b slides down, leaving a gap before latched c
		t.Fatal("nothing moved")
	}
	verifyT(t, p)
	if err := p.Unlatch(c); err != nil {
		t.Fatal(err)
	}
	p.Compact() // the gap's hole goes, and its slot is freed
	verifyT(t, p)
	var got []Ref
	for i := range 3 { // reuse every free slot
		r, err := p.Commit(pattern(10, 10+i))
		if err != nil {
			break
		}
		got = append(got, r)
	}
	for _, r := range got {
		if r == first || r == a {
			t.Fatalf("a retired slot was reused: %v (first %v, last %v)", r, first, a)
		}
	}
	for _, stale := range []Ref{first, a} {
		unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Read(stale, nil); return err })
	}
	for i, r := range []Ref{b, c, d} {
		if !bytes.Equal(readT(t, p, r), pattern(100, 2+i)) {
			t.Fatalf("segment %v damaged", r)
		}
	}
	verifyT(t, p)
	if p.retired != 1 {
		t.Fatalf("%d slots retired, want 1", p.retired)
	}
}

// TestHoleAtLastGenerationNeverHoldsSegment: a segment released at its
// slot's last usable generation may leave the slot as a hole, one
// generation on; a commit that fit that hole exactly used to hand out a Ref
// in it, and releasing that wrapped the generation, so the slot's first Ref
// came back to life.
func TestHoleAtLastGenerationNeverHoldsSegment(t *testing.T) {
	p := newT(t, 4096, nil)
	first := commitT(t, p, pattern(100, 0))
	if err := p.Release(first); err != nil {
		t.Fatal(err)
	}
	genBefore(p, first.index(), 1)
	refs := []Ref{first}
	for i := range 4 {
		r := commitT(t, p, pattern(100, 1+i)) // in first's slot, then in the hole r leaves: an exact fit
		commitT(t, p, pattern(8, 0))          // keeps r from being the last extent
		for _, old := range refs {
			if r == old {
				t.Fatalf("commit %d returned %v, handed out before", i, r)
			}
			unchanged(t, p, ErrUnknownRef, func() error { _, err := p.Read(old, nil); return err })
		}
		if !bytes.Equal(readT(t, p, r), pattern(100, 1+i)) {
			t.Fatalf("segment %v reads wrong", r)
		}
		if err := p.Release(r); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
		verifyT(t, p)
	}
	if p.retired != 1 {
		t.Fatalf("%d slots retired, want 1", p.retired)
	}
}
