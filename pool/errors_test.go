package pool

import (
	"errors"
	"syscall"
	"testing"
)

// TestErrorText pins the one error shape: the package named once (with the
// pool's name quoted when it has one), the operation and its object, then
// the sentinel's words.
func TestErrorText(t *testing.T) {
	named := newT(t, 4096, &Options{Name: "morsels"})
	named.firstGen = 0 // before any slot is taken, so the ref prints as 0.0
	r := commitT(t, named, []byte("x"))
	if err := named.Release(r); err != nil {
		t.Fatal(err)
	}
	unnamed := newT(t, 64, nil)
	for _, c := range []struct {
		err  error
		want string
		is   error
	}{
		{named.Release(r), `pool "morsels": release ref 0.0: unknown or released ref`, ErrUnknownRef},
		{func() error { _, err := unnamed.Commit(make([]byte, 100)); return err }(), "pool: commit 100 bytes: larger than the pool can ever hold", ErrTooLarge},
		{unnamed.Release(0), "pool: release ref 0: unknown or released ref", ErrUnknownRef},
		{func() error { _, err := New(0, &Options{Name: "x"}); return err }(), `pool "x": new: capacity 0 is not positive: invalid argument`, ErrInvalid},
		{func() error { _, err := New(1<<62, nil); return err }(), "pool: new 4611686018427387904 bytes: reserving 4611686018427387904 bytes: cannot allocate memory", syscall.ENOMEM},
		// The reservation that failed is MaxCapacity's, not the capacity's.
		{func() error { _, err := New(4096, &Options{MaxCapacity: 1 << 62}); return err }(), "pool: new 4096 bytes: reserving 4611686018427387904 bytes: cannot allocate memory", syscall.ENOMEM},
	} {
		if c.err == nil || c.err.Error() != c.want || !errors.Is(c.err, c.is) {
			t.Errorf("got %v, want %q (errors.Is %v)", c.err, c.want, c.is)
		}
	}
}
