package pool

import (
	"errors"
	"math"
	"strings"
	"testing"
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
