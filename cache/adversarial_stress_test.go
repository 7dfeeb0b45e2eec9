package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/pool"
)

// advWorker is one goroutine of advStress: it sets (also from views it
// holds pinned), deletes, pins, releases (each Handle twice, the second
// must be ErrReleased), loads (loaders that fail, panic or succeed, with
// contexts that time out), commits to and releases from a shared pool, and
// gets, checking every value read and that no view it holds changes.
func advWorker(c *Cache, g int, stop *atomic.Bool, shared *pool.Pool) error {
	r := rand.New(rand.NewPCG(uint64(g), 7))
	var pins []held
	var buf []byte
	var refs []pool.Ref
	defer func() {
		for _, ref := range refs {
			_ = shared.Release(ref)
		}
	}()
	for n := 0; !stop.Load(); n++ {
		i := r.IntN(300)
		switch op := r.IntN(20); {
		case op < 4:
			if err := c.Set(key(i), value(i, n, r.IntN(2000))); err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) && !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("set: %w", err)
			}
		case op < 5:
			if len(pins) > 0 { // set from a pinned view
				p := pins[r.IntN(len(pins))]
				if err := c.Set(key(p.i), p.view); err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) && !errors.Is(err, ErrTooLarge) {
					return fmt.Errorf("set from view: %w", err)
				}
			}
		case op < 6:
			if _, err := c.Delete(key(i)); err != nil {
				return err
			}
		case op < 9:
			hd, ok, err := pinValid(c, i)
			if err != nil {
				return err
			}
			if ok {
				pins = append(pins, hd)
			}
		case op < 12:
			if len(pins) > 0 {
				k := r.IntN(len(pins))
				if err := pins[k].h.Release(); err != nil {
					return fmt.Errorf("release: %w", err)
				}
				if err := pins[k].h.Release(); !errors.Is(err, ErrReleased) {
					return fmt.Errorf("second release: %v", err)
				}
				pins = append(pins[:k], pins[k+1:]...)
			}
		case op < 14:
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(200))*time.Microsecond)
			v, err := c.GetOrLoad(ctx, buf[:0], key(i), func(ctx context.Context, k []byte) ([]byte, error) {
				if r := rand.IntN(10); r == 0 {
					return nil, errors.New("load failed")
				} else if r == 1 {
					panic("load panicked")
				}
				time.Sleep(50 * time.Microsecond)
				return value(i, -1, 300), nil
			})
			cancel()
			if err == nil && !valid(v, i) {
				return fmt.Errorf("loaded key %d bad", i)
			}
			buf = v
		case op < 15:
			if shared != nil {
				if ref, err := shared.Commit(make([]byte, 1000)); err == nil {
					refs = append(refs, ref)
				}
				if len(refs) > 10 {
					_ = shared.Release(refs[0])
					refs = refs[1:]
				}
			}
		default:
			var ok bool
			if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
				return fmt.Errorf("key %d read bad", i)
			}
		}
		if n%32 == 0 {
			for _, p := range pins {
				if !bytes.Equal(p.view, p.val) {
					return fmt.Errorf("pinned view of key %d changed", p.i)
				}
			}
		}
		if len(pins) > 20 {
			_ = pins[0].h.Release()
			pins = pins[1:]
		}
	}
	for _, p := range pins {
		if !bytes.Equal(p.view, p.val) {
			return fmt.Errorf("pinned view of key %d changed", p.i)
		}
		if err := p.h.Release(); err != nil {
			return err
		}
	}
	return nil
}

// advStress runs six advWorkers against c while another goroutine resizes
// it to budgets from 1 byte to MaxBudget and tries to Close it while it
// holds a pin (which must be ErrBusy); then it checks the invariants and
// that nothing is counted pinned.
func advStress(t *testing.T, c *Cache, shared *pool.Pool, maxB int) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 6 {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- advWorker(c, g, &stop, shared) }()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(99, 1))
		for !stop.Load() {
			n := []int{1, 7, 100, 4096, maxB / 2, maxB, r.IntN(maxB) + 1}[r.IntN(7)]
			if err := c.Resize(n); err != nil && !errors.Is(err, ErrFull) {
				errs <- fmt.Errorf("resize %d: %w", n, err)
				return
			}
			for i := range 300 {
				if _, h, err := c.Pin(key(i)); err == nil {
					if err := c.Close(); !errors.Is(err, ErrBusy) {
						errs <- fmt.Errorf("close with a pin: %v", err)
						return
					}
					_ = h.Release()
					break
				}
			}
			c.Stats()
			time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
		}
	}()
	dur := 500 * time.Millisecond
	if testing.Short() {
		dur = 100 * time.Millisecond
	}
	stopAfter(t, dur, &stop, &wg, errs)
	verifyT(t, c)
	st := c.Stats()
	if st.Handles != 0 || st.BytesPinned != 0 || st.BytesUsed > st.Budget {
		t.Errorf("stats %+v", st)
	}
}

// TestResizeRacingEverythingOwned runs advStress on a cache with a pool of
// its own (so Resizes rebuild and compact).
func TestResizeRacingEverythingOwned(t *testing.T) {
	stressThenClose(t, 64<<10, 256<<10, 0, func(c *Cache, p *pool.Pool) { advStress(t, c, p, 256<<10) })
}

// TestResizeRacingEverythingShared runs advStress on a cache on a pool
// whose other user commits (so the cache is asked to reclaim).
func TestResizeRacingEverythingShared(t *testing.T) {
	stressThenClose(t, 64<<10, 256<<10, 128<<10, func(c *Cache, p *pool.Pool) { advStress(t, c, p, 256<<10) })
}

// stressThenClose makes a cache of budget bytes (MaxBudget maxBudget) with
// a pool of its own, or, if poolBytes > 0, on a new pool of that capacity;
// runs stress on it (p is nil for a pool of its own); and closes it: a
// shared pool must then hold nothing of it, and no goroutine may be left.
func stressThenClose(t *testing.T, budget, maxBudget, poolBytes int, stress func(c *Cache, p *pool.Pool)) {
	t.Helper()
	base := runtime.NumGoroutine()
	o := &Options{MaxBudget: maxBudget}
	if poolBytes > 0 {
		p, err := pool.New(poolBytes, nil)
		if err != nil {
			t.Fatal(err)
		}
		o.Pool = p
	}
	c, err := New(budget, o)
	if err != nil {
		t.Fatal(err)
	}
	stress(c, o.Pool)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if p := o.Pool; p != nil {
		if st := p.Stats(); st.UsedSegments != 0 || st.Used != 0 {
			t.Errorf("pool after close: %+v", st)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	waitGoroutines(t, base)
}

// pinValid pins key i and checks its value, for a stress test to hold; ok
// is false on a miss.
func pinValid(c *Cache, i int) (hd held, ok bool, err error) {
	v, h, err := c.Pin(key(i))
	switch {
	case err == ErrNotFound:
		return held{}, false, nil
	case err != nil:
		return held{}, false, fmt.Errorf("pin: %w", err)
	case !valid(v, i):
		_ = h.Release()
		return held{}, false, fmt.Errorf("pinned key %d bad", i)
	}
	return held{i, bytes.Clone(v), v, h, false}, true, nil
}
