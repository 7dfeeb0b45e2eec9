package cache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/pool"
)

// within runs f and, if it has not returned after 30 s, prints every
// goroutine's stack and ends the test binary, so that a hang fails with its
// cause instead of holding CI until the binary's timeout. It exits rather
// than panics: a panicking test still runs its cleanups, and a cache's
// Close waits for the very Sets that hang.
func within(t testing.TB, what string, f func()) {
	t.Helper()
	const d = 30 * time.Second // far above any legitimate run, even under -race on a loaded machine
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
	within(t, "Sets", wg.Wait)
	if n := fulls.Load(); n > 0 {
		t.Fatalf("%d Sets of %d failed with ErrFull with nothing pinned; the first: %v", n, sets.Load(), first.Load())
	}
	verifyT(t, c)
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
		within(t, "Sets", wg.Wait)
	}
	for _, h := range hs {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	verifyT(t, c)
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
		within(t, "Sets racing Close", wg.Wait)
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
	within(t, "Set whose reclaimer resizes the cache", func() {
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

// heldPins returns the pins and pinned bytes the entry table really holds.
func (c *Cache) heldPins() (pins, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.cur()
	for id := range s.nextID {
		e := s.entry(id)
		if n := pinsOf(e.loadWord()); n > 0 {
			pins += int64(n)
			bytes += c.weight(keyLen(e.lens) + valLen(e.lens))
		}
	}
	return
}

// statsAfterMixedConcurrency runs phases of Sets, Deletes, Pins, Releases,
// GetOrLoads (some given up on) and Gets, with Resizes from 1 byte to
// MaxBudget, and after each checks Stats against what is really held:
// Handles and BytesPinned against the pins in the entry table and those the
// test holds, Loads against the loader's calls, Entries and BytesUsed
// against the invariants; Close is busy while pins are out, and after the
// last Close no goroutine is left.
func statsAfterMixedConcurrency(t *testing.T, shared bool) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var opts = &Options{MaxBudget: 1 << 20}
	var p *pool.Pool
	if shared {
		var err error
		p, err = pool.New(1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		opts.Pool = p
	}
	g0 := runtime.NumGoroutine()
	c, err := New(256<<10, opts)
	if err != nil {
		t.Fatal(err)
	}
	var loaderCalls atomic.Int64
	phases := 6
	if testing.Short() {
		phases = 2
	}
	for phase := range phases {
		var stop atomic.Bool
		var wg sync.WaitGroup
		keep := make([][]Handle, 4)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), uint64(phase)))
				var hs []Handle
				for !stop.Load() {
					k := key(r.IntN(200))
					switch r.IntN(8) {
					case 0, 1:
						v := make([]byte, r.IntN(8000))
						if err := c.Set(k, v); err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) && !errors.Is(err, ErrTooLarge) {
							t.Error(err)
						}
					case 2:
						_, _ = c.Delete(k)
					case 3, 4:
						if _, h, err := c.Pin(k); err == nil {
							hs = append(hs, h)
						}
					case 5:
						if len(hs) > 0 {
							i := r.IntN(len(hs))
							if err := hs[i].Release(); err != nil {
								t.Error(err)
							}
							hs[i] = hs[len(hs)-1]
							hs = hs[:len(hs)-1]
						}
					case 6:
						ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(200))*time.Microsecond)
						_, _ = c.GetOrLoad(ctx, nil, k, func(ctx context.Context, k []byte) ([]byte, error) {
							loaderCalls.Add(1)
							if k[len(k)-1]%2 == 0 {
								time.Sleep(50 * time.Microsecond)
							}
							return make([]byte, 3000), nil
						})
						cancel()
					case 7:
						_, _ = c.Get(nil, k)
					}
				}
				keep[g] = hs
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(7, uint64(phase)))
			for !stop.Load() {
				_ = c.Resize([]int{1 << 20, 64 << 10, 8 << 10, 300 << 10, 1}[r.IntN(5)])
				time.Sleep(200 * time.Microsecond)
			}
		}()
		time.Sleep(80 * time.Millisecond)
		stop.Store(true)
		within(t, "workers", wg.Wait)
		// Quiescent, except loads still landing: a load every caller gave up
		// on leaves the map before its loader returns, so wait for the
		// count itself (each load stores, if it does, before it counts).
		for deadline := time.Now().Add(5 * time.Second); c.Stats().Loads != int(loaderCalls.Load()) && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		pins, bytes := c.heldPins()
		st := c.Stats()
		n := 0
		for _, hs := range keep {
			n += len(hs)
		}
		if int64(st.Handles) != pins || int64(n) != pins || int64(st.BytesPinned) != bytes {
			t.Errorf("phase %d: stats handles %d pinned %d; table %d pins, %d bytes; test holds %d", phase, st.Handles, st.BytesPinned, pins, bytes, n)
		}
		if st.Loads != int(loaderCalls.Load()) {
			t.Errorf("phase %d: Loads %d, loader called %d", phase, st.Loads, loaderCalls.Load())
		}
		c.mu.Lock()
		if err := c.verify(); err != nil {
			t.Error(err)
		}
		if st.Entries != int(atomic.LoadUint64(&c.count)) || st.BytesUsed != int(c.used+c.gone) || c.promised != 0 {
			t.Errorf("phase %d: stats %+v, promised %d", phase, st, c.promised)
		}
		c.mu.Unlock()
		if n > 0 {
			if err := c.Close(); !errors.Is(err, ErrBusy) {
				t.Errorf("close with pins: %v", err)
			}
		}
		for _, hs := range keep {
			for _, h := range hs {
				if err := h.Release(); err != nil {
					t.Error(err)
				}
			}
		}
		st = c.Stats()
		if st.Handles != 0 || st.BytesPinned != 0 {
			t.Errorf("phase %d after release: %+v", phase, st)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if shared {
		if ps := p.Stats(); ps.Used != 0 {
			t.Errorf("pool still holds %d", ps.Used)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > g0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > g0 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines left\n%s", n-g0, buf[:runtime.Stack(buf, true)])
	}
}

func TestStatsAfterMixedConcurrencyOwned(t *testing.T)  { statsAfterMixedConcurrency(t, false) }
func TestStatsAfterMixedConcurrencyShared(t *testing.T) { statsAfterMixedConcurrency(t, true) }
