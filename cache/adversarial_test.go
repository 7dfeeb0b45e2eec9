package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
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

// TestLoadSupersededBySetOrDelete runs a Set, then a Delete, of a key while
// its load is in flight: the load's value, read before them, is returned to
// the loader's caller but must not replace the Set's value or undo the
// Delete (it did: the stale value was stored over them).
func TestLoadSupersededBySetOrDelete(t *testing.T) {
	c := newT(t, 1<<16, nil)
	during := func(k string, change func()) {
		t.Helper()
		started, finish, done := make(chan struct{}), make(chan struct{}), make(chan []byte)
		go func() {
			v, err := c.GetOrLoad(context.Background(), nil, []byte(k), func(context.Context, []byte) ([]byte, error) {
				close(started)
				<-finish
				return []byte("old"), nil
			})
			if err != nil {
				t.Error(err)
			}
			done <- v
		}()
		<-started
		change()
		close(finish)
		if v := <-done; string(v) != "old" {
			t.Fatalf("the loader's caller got %q, want its value", v)
		}
	}
	during("k", func() { setT(t, c, []byte("k"), []byte("new")) })
	if v, ok := c.Get(nil, []byte("k")); !ok || string(v) != "new" {
		t.Fatalf("after a Set during the load: %q %v, want the Set's value", v, ok)
	}
	during("d", func() { _, _ = c.Delete([]byte("d")) })
	if v, ok := c.Get(nil, []byte("d")); ok {
		t.Fatalf("after a Delete during the load: %q, want a miss", v)
	}
	// A load with no Set or Delete meanwhile still stores its value.
	during("s", func() {})
	if v, ok := c.Get(nil, []byte("s")); !ok || string(v) != "old" {
		t.Fatalf("after a plain load: %q %v", v, ok)
	}
	if n := c.loads.inMap.Load(); n != 0 {
		t.Fatalf("%d flights counted in the map with none in flight", n)
	}
}

// TestGetDstHoldingKey passes GetOrLoad (and so Get) a dst whose spare
// capacity holds the key, a buffer reused for both, while a writer keeps
// replacing the key's entry. A Get that copied the value over the key and
// then found the entry replaced retried with the overwritten key, and
// missed: GetOrLoad then called the loader with a wrong key (and stored
// its value under that key).
func TestGetDstHoldingKey(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	c := newT(t, 1<<18, nil)
	setT(t, c, key(0), value(0, 0, 4000))
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 1; !stop.Load(); n++ {
			_ = c.Set(key(0), value(0, n, 4000))
		}
	}()
	var wrong []string
	load := func(_ context.Context, k []byte) ([]byte, error) {
		if !bytes.Equal(k, key(0)) {
			wrong = append(wrong, fmt.Sprintf("%.12q", k))
		}
		return value(0, -1, 4000), nil
	}
	buf := make([]byte, 0, 8192)
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline) && len(wrong) == 0; {
		buf = append(buf[:0], key(0)...)
		v, err := c.GetOrLoad(context.Background(), buf[:0], buf, load)
		if err != nil || !valid(v, 0) {
			t.Fatalf("GetOrLoad: %v, valid %v", err, valid(v, 0))
		}
		buf = v
	}
	stop.Store(true)
	wg.Wait()
	if len(wrong) > 0 {
		t.Fatalf("the loader was called with %d wrong keys: %s", len(wrong), wrong[0])
	}
	if c.Len() != 1 {
		t.Fatalf("%d entries, want key 0's alone", c.Len())
	}
}

// TestLoaderPanicIsAnError has loaders panic, with an error and with a
// string: each caller gets an error (which wraps the panic's error, so
// errors.Is finds it; it did not), nothing is stored, and the key is not
// wedged: the next miss loads it.
func TestLoaderPanicIsAnError(t *testing.T) {
	c := newT(t, 1<<16, nil)
	ctx := context.Background()
	boom := errors.New("boom")
	for _, r := range []any{boom, "a string"} {
		_, err := c.GetOrLoad(ctx, nil, []byte("k"), func(context.Context, []byte) ([]byte, error) { panic(r) })
		if err == nil || !strings.Contains(err.Error(), "loader panicked") {
			t.Fatalf("panic(%v): got %v", r, err)
		}
		if r == boom && !errors.Is(err, boom) {
			t.Fatalf("panic(boom): %v does not wrap boom", err)
		}
		if c.Has([]byte("k")) {
			t.Fatal("a panicking load stored a value")
		}
	}
	v, err := c.GetOrLoad(ctx, nil, []byte("k"), func(context.Context, []byte) ([]byte, error) { return []byte("v"), nil })
	if err != nil || string(v) != "v" {
		t.Fatalf("load after panics: %q %v", v, err)
	}
	if st := c.Stats(); st.Loads != 3 || st.LoadErrors != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestResizeWaitsForSetsInFlight shrinks a cache, with nothing pinned,
// while another goroutine sets and deletes a value larger than the new
// budget: the bytes that Set has made room for and is copying in are not
// pinned, so Resize must not fail with ErrFull (it did, after evicting
// everything, whenever the Set was in flight). Then Close races both, and
// neither may hang.
func TestResizeWaitsForSetsInFlight(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, shared := range []bool{false, true} {
		var opts *Options
		if shared {
			p, err := pool.New(1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			opts = &Options{Pool: p}
		}
		c, err := New(1<<20, opts)
		if err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			big := make([]byte, 300<<10)
			for !stop.Load() {
				if err := c.Set([]byte("big"), big); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrFull) {
					t.Errorf("set: %v", err)
					return
				}
				_, _ = c.Delete([]byte("big"))
			}
		}()
		fulls := 0
		for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
			if err := c.Resize(100 << 10); errors.Is(err, ErrFull) {
				fulls++
			} else if err != nil {
				t.Fatal(err)
			}
			if err := c.Resize(1 << 20); err != nil {
				t.Fatal(err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if err := c.Resize(100 << 10); errors.Is(err, ErrClosed) {
					return
				} else if err != nil {
					t.Errorf("resize racing close: %v", err)
					return
				}
				_ = c.Resize(1 << 20)
			}
		}()
		time.Sleep(20 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		stop.Store(true)
		wg.Wait()
		if fulls > 0 {
			t.Fatalf("shared %v: %d Resizes failed with ErrFull with nothing pinned", shared, fulls)
		}
	}
}

// TestSetWaitsForSetsInFlight has two goroutines set values of 3/5 of the
// budget, with nothing pinned: when one Set finds the other's bytes
// promised, it must wait for that Set and evict its entry, not fail with
// ErrFull (it did, dropping its key's old value: nothing unpinned was
// left, but the other Set's bytes were not pinned either).
func TestSetWaitsForSetsInFlight(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	c := newT(t, 1<<20, nil)
	var fulls atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]byte, 600<<10)
			for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
				if err := c.Set(key(g), v); errors.Is(err, ErrFull) {
					fulls.Add(1)
				} else if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := fulls.Load(); n > 0 {
		t.Fatalf("%d Sets failed with ErrFull with nothing pinned", n)
	}
}

// TestSetRacingLoadWins sets a key while three GetOrLoads of it miss and
// load: a load may begin after the Set has begun (the Set takes the old
// value out first), but its value, which the load read on a miss, must
// not replace the Set's. It did, in a few rounds in a thousand: only a load
// begun before the Set was marked stale.
func TestSetRacingLoadWins(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	c := newT(t, 1<<20, nil)
	load := func(context.Context, []byte) ([]byte, error) { return []byte("loaded"), nil }
	lost, rounds := 0, 20000
	if check.On {
		rounds = 500 // the checked build verifies after every Set: some 2ms a round
	}
	for round := range rounds {
		k := key(round)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, _ = c.GetOrLoad(context.Background(), nil, k, load)
			}()
		}
		close(start)
		setT(t, c, k, []byte("set"))
		wg.Wait()
		for c.loads.inMap.Load() != 0 { // the loads' own stores come before they leave the map
			runtime.Gosched()
		}
		if v, ok := c.Get(nil, k); !ok || string(v) != "set" {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d Sets of %d replaced by the value of a load that raced them", lost, rounds)
	}
}
