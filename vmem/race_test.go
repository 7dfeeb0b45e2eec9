package vmem

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
)

// TestCloseRacesEveryMethod closes regions (anonymous, writable and
// read-only file) while goroutines call every method on them: no call may
// fault or fail with anything but ErrClosed (or nil, before the Close).
func TestCloseRacesEveryMethod(t *testing.T) {
	ps := PageSize()
	dir := t.TempDir()
	for round := range 50 {
		path := filepath.Join(dir, "f")
		w := openFileT(t, path, false)
		fr, err := MapFile(w, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := fr.Grow(4 * ps); err != nil {
			t.Fatal(err)
		}
		ro, err := MapFile(openFileT(t, path, true), 1<<20, &Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		anon, err := Reserve(1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := anon.Grow(4 * ps); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*Region{anon, fr, ro} {
			calls := map[string]func() error{
				"Grow":          func() error { return r.Grow(2 * ps) },
				"Release":       func() error { return r.Release(0, ps) },
				"Reuse":         func() error { return r.Reuse(0, ps) },
				"Protect":       func() error { return r.Protect(ps, ps, ProtRead) },
				"Sync":          func() error { return r.Sync(0, ps) },
				"SyncAsync":     func() error { return r.SyncAsync(0, ps) },
				"Refresh":       r.Refresh,
				"Resident":      func() error { _, err := r.Resident(); return err },
				"CloseTruncate": func() error { return r.CloseTruncate(ps) },
				"Close":         r.Close,
				"views":         func() error { _, _, _, _ = r.Len(), r.Cap(), r.FileLen(), r.Name(); return nil },
			}
			var wg sync.WaitGroup
			start := make(chan struct{})
			closes := make(chan error, 2*20)
			for name, call := range calls {
				wg.Go(func() {
					<-start
					for range 20 {
						err := call()
						if name == "Close" || name == "CloseTruncate" {
							closes <- err
							continue
						}
						if err != nil && !errors.Is(err, ErrClosed) && !(errors.Is(err, ErrReadOnly) && r.readOnly) {
							t.Errorf("round %d: %s racing Close: %v", round, name, err)
						}
					}
				})
			}
			close(start)
			wg.Wait()
			close(closes)
			ok := 0
			for err := range closes {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, ErrClosed):
					t.Errorf("round %d: a Close racing Close: %v", round, err)
				}
			}
			if ok != 1 {
				t.Fatalf("round %d: %d Closes succeeded, want 1", round, ok)
			}
		}
	}
}
