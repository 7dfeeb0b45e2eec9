package cache

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/pool"
)

// within runs f and, if it has not returned after d, prints every
// goroutine's stack and ends the test binary, so that a hang fails with its
// cause instead of holding CI until the binary's timeout. It exits rather
// than panics: a panicking test still runs its cleanups, and a cache's
// Close waits for the very Sets that hang.
func within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "--- FAIL: %s: %s: still running after %v\n%s", t.Name(), what, d, buf)
		os.Exit(2)
	}
}

// TestSetWaitsForReservationsInFlight has four goroutines set values of a
// quarter to nearly half the budget in a cache with a pool of its own,
// nothing pinned: a Set whose room the budget has (it evicted for it) may
// find the pool's free space split by the reservations of other Sets in
// flight. It must wait for them and try again, not fail with ErrFull (it
// did, in about a third of the Sets, dropping its key's old value).
func TestSetWaitsForReservationsInFlight(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	c := newT(t, 1<<20, nil)
	var fulls, sets atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for g, size := range []int{250 << 10, 350 << 10, 450 << 10, 100 << 10} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := make([]byte, size)
			for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
				sets.Add(1)
				if err := c.Set(key(g), v); errors.Is(err, ErrFull) {
					fulls.Add(1)
					first.CompareAndSwap(nil, err)
				} else if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	within(t, 5*time.Second, "Sets", wg.Wait)
	if n := fulls.Load(); n > 0 {
		t.Fatalf("%d Sets of %d failed with ErrFull with nothing pinned; the first: %v", n, sets.Load(), first.Load())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.verify(); err != nil {
		t.Fatal(err)
	}
}

// TestSetsFailWherePinsSplitThePool pins every other entry of a full
// cache with a pool of its own, so that the free space is in pieces too
// small for any of the values three goroutines then set: each Set must
// end, with ErrFull, and none wait for ever for another (a Set that waits
// for Sets in flight holding pool space must not wait for one that waits
// too).
func TestSetsFailWherePinsSplitThePool(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	c := newT(t, 1<<20, nil)
	v := make([]byte, 60<<10)
	var hs []Handle
	for i := range 16 {
		setT(t, c, key(i), v)
		if i%2 == 0 {
			_, h, err := c.Pin(key(i))
			if err != nil {
				t.Fatal(err)
			}
			hs = append(hs, h)
		}
	}
	big := make([]byte, 200<<10)
	for range 20 {
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.Set(key(100+g), big); err != nil && !errors.Is(err, ErrFull) {
					t.Error(err)
				}
			}()
		}
		within(t, 5*time.Second, "Sets", wg.Wait)
	}
	for _, h := range hs {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.verify(); err != nil {
		t.Fatal(err)
	}
}

// TestSetsRacingCloseSayClosed has four goroutines set values that split
// a cache's own pool between their reservations, nothing pinned, until
// Close stops them: every Set must store or fail with ErrClosed. A Set
// whose reservation failed after Close had begun stopped making room and
// failed with ErrFull ("the rest is pinned"), which blamed pins that were
// not there (a few Sets in 200 rounds).
func TestSetsRacingCloseSayClosed(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var wrong, total atomic.Int64
	var first atomic.Value
	for round := range 200 {
		c, err := New(1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for g, size := range []int{250 << 10, 350 << 10, 450 << 10, 100 << 10} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := make([]byte, size)
				for {
					total.Add(1)
					switch err := c.Set(key(g), v); {
					case errors.Is(err, ErrClosed):
						return
					case err != nil:
						wrong.Add(1)
						first.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		time.Sleep(time.Duration(round%7) * 100 * time.Microsecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		within(t, 5*time.Second, "Sets racing Close", wg.Wait)
	}
	if n := wrong.Load(); n > 0 {
		t.Fatalf("%d of %d Sets racing Close failed with neither nil nor ErrClosed; the first: %v", n, total.Load(), first.Load())
	}
}

// shrinkOnReclaim is a reclaimer of a shared pool that gives the pool room
// by shrinking a cache's budget below what it holds (a memory governor,
// say); it calls nothing that reserves in the pool, as the pool asks.
type shrinkOnReclaim struct {
	c   *Cache
	err error
}

func (s *shrinkOnReclaim) Reclaim(need int) int {
	before := s.c.Stats().BytesUsed
	s.err = s.c.Resize(max(1, before-need))
	return max(0, before-s.c.Stats().BytesUsed)
}

// TestResizeFromReclaimer sets a value in a cache on a shared pool that
// another user has mostly filled: the pool's slow path runs, on the Set's
// goroutine, a reclaimer that resizes the cache. That Resize waited for the
// Sets in flight, this one among them, which waited for it: for ever. It
// must not wait for a Set asking a full pool for room (ErrFull, as the pool
// is full), and the Set must end.
func TestResizeFromReclaimer(t *testing.T) {
	p, err := pool.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := newT(t, 1<<20, &Options{Pool: p})
	if _, err := p.Commit(make([]byte, 700<<10)); err != nil {
		t.Fatal(err)
	}
	r := &shrinkOnReclaim{c: c}
	if err := p.AddReclaimer(r); err != nil {
		t.Fatal(err)
	}
	defer p.RemoveReclaimer(r)
	within(t, 3*time.Second, "Set whose reclaimer resizes the cache", func() {
		wantErr(t, c.Set([]byte("k"), make([]byte, 400<<10)), ErrFull)
	})
	wantErr(t, r.err, ErrFull)
	c.mu.Lock()
	promised := c.promised
	c.mu.Unlock()
	if st := c.Stats(); st.Budget != 1<<20 || st.Entries != 0 || promised != 0 {
		t.Fatalf("stats %+v, promised %d", st, promised)
	}
	setT(t, c, []byte("k"), make([]byte, 100<<10))
}
