package cache

import (
	"errors"
	"testing"
)

// TestNewHugeBudgetIsTyped asks New for budgets no machine can reserve: it
// fails with the cache's ErrTooLarge, not only the OS's or the pool's error.
func TestNewHugeBudgetIsTyped(t *testing.T) {
	for _, tc := range []struct {
		budget int
		opts   *Options
	}{
		{1 << 62, nil},
		{1<<63 - 1, nil},
		{1 << 20, &Options{MaxBudget: 1 << 62}},
	} {
		c, err := New(tc.budget, tc.opts)
		if c != nil {
			_ = c.Close()
			t.Fatalf("New(%d, %+v) made a cache", tc.budget, tc.opts)
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("New(%d, %+v): %v, want ErrTooLarge", tc.budget, tc.opts, err)
		}
	}
}
