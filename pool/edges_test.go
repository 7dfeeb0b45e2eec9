package pool

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

// Regression and edge tests found by an adversarial review: sizes at the
// edges of the options, forged refs, and every method racing Close.

// TestEveryFreeByteIsUsable fills pools of awkward sizes with the smallest
// segments until a commit fails, and checks that the failure is ErrFull with
// no free byte left: the free space Stats reports is space a commit can
// use. A capacity that was not a multiple of the alignment used to keep a
// tail no segment could fill (New(1, nil) then refused a 1-byte commit as
// larger than the pool could ever hold, while Stats said 1 byte was free).
func TestEveryFreeByteIsUsable(t *testing.T) {
	for _, c := range []struct{ capacity, max, align int }{
		{1, 0, 0}, {1, 0, 1}, {7, 0, 8}, {12, 0, 8}, {100, 0, 64}, {1, 0, 1 << 20},
		{1000, 1001, 16}, {5, 13, 4}, {4097, 0, 4096},
	} {
		p := newT(t, c.capacity, &Options{MaxCapacity: c.max, Alignment: c.align})
		st := p.Stats()
		if st.Capacity < c.capacity || st.MaxCapacity < max(c.capacity, c.max) {
			t.Errorf("%+v: capacity %d, max %d: less than asked", c, st.Capacity, st.MaxCapacity)
		}
		n := 0
		for ; ; n++ {
			_, err := p.Commit([]byte{byte(n)})
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrFull) {
				t.Errorf("%+v: commit %d of 1 byte: %v, want ErrFull", c, n+1, err)
			}
			break
		}
		if st := p.Stats(); n == 0 || st.Free != 0 || st.LargestFree != 0 || st.Used != st.Capacity {
			t.Errorf("%+v: full after %d 1-byte commits with %+v", c, n, st)
		}
		verifyT(t, p)
	}
}

// TestHugeOptions: capacities and alignments near the limits of int and of
// the address space are refused with an error, or work; never a panic or a
// wrapped-round size. Rounding a capacity up to the alignment cannot
// overflow: one that would is ErrInvalid. A pool that is made holds at
// least what was asked, in multiples of the alignment.
func TestHugeOptions(t *testing.T) {
	for _, c := range []struct {
		capacity, max, align int
		overflows            bool // rounding capacity or max up to align overflows int
	}{
		{math.MaxInt, 0, 0, true}, {math.MaxInt, 0, 1 << 20, true}, {4096, math.MaxInt, 0, true},
		{4096, math.MaxInt - 6, 8, true}, {math.MaxInt - 1<<20, math.MaxInt, 1 << 20, true},
		{4096, math.MaxInt, 1, false}, {4096, math.MaxInt - 7, 8, false}, {1, 1 << 62, 1 << 62, false},
		{1, 0, 1 << 62, false}, {4096, 1 << 47, 0, false},
		{1, 0, 1 << 20, false}, {4096, 1 << 40, 0, false}, {3, 1<<40 - 1, 1 << 12, false},
	} {
		p, err := New(c.capacity, &Options{MaxCapacity: c.max, Alignment: c.align})
		if c.overflows {
			if !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "pool: new: ") {
				t.Errorf("%+v: %v, want ErrInvalid", c, err)
			}
			continue
		}
		if err != nil {
			// Too much address space for this machine: an error from the
			// OS, in the pool's shape.
			if errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), "pool: new ") {
				t.Errorf("%+v: %v", c, err)
			}
			continue
		}
		st := p.Stats()
		align := max(c.align, 8)
		if st.Capacity < c.capacity || st.MaxCapacity < max(c.capacity, c.max) || st.Free != st.Capacity ||
			st.Capacity%align != 0 || st.MaxCapacity%align != 0 || st.Capacity-c.capacity >= align {
			t.Errorf("%+v: %+v", c, st)
		}
		r, err := p.Commit([]byte{1, 2, 3})
		if err == nil {
			if b, err := p.Read(r, nil); err != nil || len(b) != 3 {
				t.Errorf("%+v: read %v: %v", c, b, err)
			}
		} else if !errors.Is(err, ErrFull) {
			t.Errorf("%+v: commit: %v", c, err)
		}
		if _, _, err := p.Reserve(math.MaxInt); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%+v: reserve MaxInt: %v", c, err)
		}
		if err := p.Close(); err != nil && !errors.Is(err, ErrLeaked) {
			t.Errorf("%+v: close: %v", c, err)
		}
	}
}

// TestForgedRefs: any uint64 used as a Ref that no live segment has is
// ErrUnknownRef for every method, never a panic or an index out of range,
// and changes nothing (a third of the live segments are reserved and not
// yet published, so their slots are in use too): random words, random generations over the slots in use, live
// Refs with one bit flipped, and generations around the pool's first.
func TestForgedRefs(t *testing.T) {
	p := newT(t, 1<<16, &Options{MaxCapacity: 1 << 20})
	live := map[Ref]bool{}
	var refs []Ref
	for i := range 3000 {
		r, _, err := p.Reserve(i % 50)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 != 0 { // a third stay reserved, unpublished
			if err := p.Unlatch(r); err != nil {
				t.Fatal(err)
			}
		}
		refs = append(refs, r)
	}
	for i, r := range refs {
		if i%2 == 0 && i%3 != 0 {
			if err := p.Release(r); err != nil {
				t.Fatal(err)
			}
			continue
		}
		live[r] = true
	}
	before := p.Stats()
	rng := rand.New(rand.NewPCG(1, 2))
	n := 200_000
	if testing.Short() || check.On || proc.Race {
		n = 20_000
	}
	for range n {
		var r Ref
		switch rng.IntN(4) {
		case 0:
			r = Ref(rng.Uint64())
		case 1:
			r = Ref(rng.Uint64()&^(1<<32-1) | uint64(rng.IntN(5000)))
		case 2:
			r = refs[rng.IntN(len(refs))] ^ Ref(1)<<rng.IntN(64)
		case 3:
			r = Ref(uint64(p.firstGen+uint32(rng.IntN(5))-2)<<32 | uint64(rng.IntN(5000)))
		}
		if live[r] {
			continue
		}
		for op, f := range []func() error{
			func() error { _, err := p.Read(r, nil); return err },
			func() error { _, err := p.Latch(r); return err },
			func() error { return p.Unlatch(r) },
			func() error { return p.Release(r) },
			func() error { _, err := p.Info(r); return err },
		} {
			if err := f(); !errors.Is(err, ErrUnknownRef) {
				t.Fatalf("op %d of forged ref %#x: %v, want ErrUnknownRef", op, uint64(r), err)
			}
		}
	}
	after := p.Stats()
	after.Reads, after.Latches = before.Reads, before.Latches
	if after != before {
		t.Fatalf("forged refs changed the pool:\n%+v\n%+v", before, after)
	}
	verifyT(t, p)
}

// TestEveryMethodRacingClose runs every method from several goroutines on
// refs they share (committed and reserved, released while latched, read and
// latched by others), compacting and growing, while the pool is closed
// under them: each call returns nil or a sentinel (ErrClosed only once Close
// has begun), every byte read or latched is whole, latches held keep Close
// busy, and after Close every call is ErrClosed.
func TestEveryMethodRacingClose(t *testing.T) {
	rounds, ops := 12, 200_000
	switch {
	case check.On && proc.Race:
		rounds, ops = 2, 2_000
	case check.On || proc.Race || testing.Short():
		rounds, ops = 4, 10_000
	}
	for round := range rounds {
		closeUnderStorm(t, round, ops)
	}
}

func closeUnderStorm(t *testing.T, round, ops int) {
	p, err := New(16<<10, &Options{MaxCapacity: 256 << 10, Alignment: 1 << (round % 5)})
	if err != nil {
		t.Fatal(err)
	}
	var (
		table           [64]atomic.Uint64 // refs every worker uses
		closing, closed atomic.Bool
		wg              sync.WaitGroup
	)
	expect := func(err error, what string) {
		if err == nil || errors.Is(err, ErrClosed) && closing.Load() {
			return
		}
		for _, s := range []error{ErrUnknownRef, ErrBusy, ErrNotLatched, ErrFull, ErrTooLarge} {
			if errors.Is(err, s) {
				return
			}
		}
		t.Errorf("round %d: %s: %v", round, what, err)
	}
	for w := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(round), uint64(w)))
			var mine, latched []Ref
			unlatchAll := func() {
				for _, r := range latched {
					expect(p.Unlatch(r), "unlatch")
				}
				latched = latched[:0]
			}
			defer unlatchAll()
			for i := 0; i < ops; i++ {
				if closed.Load() {
					if _, err := p.Read(Ref(table[0].Load()), nil); !errors.Is(err, ErrClosed) {
						t.Errorf("read after close: %v", err)
					}
					if len(latched) > 0 {
						t.Errorf("closed with %d latches held", len(latched))
					}
					return
				}
				r := Ref(table[rng.IntN(len(table))].Load())
				switch rng.IntN(12) {
				case 0, 1:
					ref, err := p.Commit(stamped(rng.Uint64(), rng.IntN(600)))
					expect(err, "commit")
					if err == nil {
						mine = append(mine, ref)
						table[rng.IntN(len(table))].Store(uint64(ref))
					}
				case 2:
					ref, b, err := p.Reserve(8 + rng.IntN(300))
					expect(err, "reserve")
					if err == nil {
						copy(b, stamped(rng.Uint64(), len(b)))
						if rng.IntN(4) == 0 {
							expect(p.Release(ref), "release reserved")
						}
						expect(p.Unlatch(ref), "publish")
						table[rng.IntN(len(table))].Store(uint64(ref))
					}
				case 3:
					b, err := p.Read(r, nil)
					expect(err, "read")
					if err == nil && len(b) > 0 && !checkStamped(b) {
						t.Errorf("read %v: bad bytes", r)
					}
				case 4:
					b, err := p.Latch(r)
					expect(err, "latch")
					if err == nil {
						if len(b) > 0 && !checkStamped(b) {
							t.Errorf("latch %v: bad bytes", r)
						}
						latched = append(latched, r)
					}
				case 5:
					// A stray Unlatch of a shared ref would steal another
					// worker's latch (latches are counted, not owned); forge one.
					expect(p.Unlatch(Ref(rng.Uint64())), "forged unlatch")
				case 6:
					expect(p.Release(r), "release")
				case 7:
					if len(mine) > 0 {
						k := rng.IntN(len(mine))
						expect(p.Release(mine[k]), "release own")
						mine = append(mine[:k], mine[k+1:]...)
					}
				case 8:
					_, err := p.Info(r)
					expect(err, "info")
				case 9:
					if rng.IntN(20) == 0 {
						p.Compact()
					}
				case 10:
					if st := p.Stats(); st.Used+st.Free != st.Capacity || st.LargestFree > st.Free || st.Used < 0 || st.Free < 0 {
						t.Errorf("stats %+v", st)
					}
				case 11:
					if rng.IntN(4) == 0 {
						unlatchAll()
					}
				}
			}
		})
	}
	time.Sleep(time.Duration(round%8) * 5 * time.Millisecond)
	closing.Store(true)
	for {
		err := p.Close()
		if err == nil || errors.Is(err, ErrLeaked) {
			break
		}
		if !errors.Is(err, ErrBusy) {
			t.Fatalf("close: %v", err)
		}
		time.Sleep(50 * time.Microsecond)
	}
	closed.Store(true)
	wg.Wait()
	for _, f := range []func() error{
		func() error { _, err := p.Commit([]byte{1}); return err },
		func() error { _, _, err := p.Reserve(1); return err },
		func() error { _, err := p.Read(Ref(table[1].Load()), nil); return err },
		func() error { _, err := p.Latch(Ref(table[1].Load())); return err },
		func() error { return p.Unlatch(Ref(table[1].Load())) },
		func() error { return p.Release(Ref(table[1].Load())) },
		func() error { _, err := p.Info(Ref(table[1].Load())); return err },
		p.Close,
	} {
		if err := f(); !errors.Is(err, ErrClosed) {
			t.Fatalf("after close: %v", err)
		}
	}
}
