// Adversarial tests, pass 8: the Set that runs whole under one hold of the
// lock (553ec49): an entry of at most lockedCopyMax bytes that the pool
// places at once is reserved (TryReserve, the pool's lock taken under mu),
// copied and inserted without being counted in flight; anything else falls
// back to the two-step path.

package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/fuzzops"
	"github.com/offheap/offheap/pool"
)

// quiet8 checks a cache nothing is running in: every Set's promise ended
// (none counted reclaiming), no Set is counted in flight or stalled in the
// store, no Resize is waiting, the budget holds and the invariants hold.
func quiet8(t testing.TB, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	s := c.cur()
	if c.promised != 0 || c.reclaiming != 0 || c.shrinking != 0 || s.inflight != 0 || s.stalled != 0 {
		t.Errorf("quiet cache: promised %d, reclaiming %d, shrinking %d, in flight %d, stalled %d",
			c.promised, c.reclaiming, c.shrinking, s.inflight, s.stalled)
	}
	if c.used+c.gone > c.budget {
		t.Errorf("quiet cache: used %d + gone %d over the budget %d", c.used, c.gone, c.budget)
	}
	if err := c.verify(); err != nil {
		t.Error(err)
	}
}

// budgetWatch8 checks, until stop, under the lock, that used + gone +
// promised never exceeds the budget, that reclaiming is part of promised,
// and now and then the whole invariants; it returns the first breach.
func budgetWatch8(c *Cache, stop *atomic.Bool) error {
	for i := 0; !stop.Load(); i++ {
		c.mu.Lock()
		var err error
		switch {
		case c.closed:
		case c.used+c.gone+c.promised > c.budget:
			err = fmt.Errorf("used %d + gone %d + promised %d over the budget %d", c.used, c.gone, c.promised, c.budget)
		case c.reclaiming < 0 || c.reclaiming > c.promised || c.promised < 0:
			err = fmt.Errorf("promised %d, reclaiming %d", c.promised, c.reclaiming)
		case i%32 == 0:
			err = c.verify()
		}
		c.mu.Unlock()
		if err != nil {
			return err
		}
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}

// len8 picks a value length for key i (12 bytes long): mostly entries the
// whole path takes, often one exactly at lockedCopyMax or one past it, and
// some longer ones that take the two-step path.
func len8(r *rand.Rand) int {
	const klen = 12
	switch x := r.IntN(10); {
	case x < 6:
		return 12 + r.IntN(lockedCopyMax-klen-12+1) // n <= lockedCopyMax
	case x == 6:
		return lockedCopyMax - klen // n == lockedCopyMax: whole
	case x == 7:
		return lockedCopyMax - klen + 1 // n == lockedCopyMax+1: two steps
	default:
		return lockedCopyMax + r.IntN(5000)
	}
}

// setOK8 says whether err is an outcome a Set may have under stress: stored,
// rejected by the policy, no room (on a shared pool or with pins), or too
// large for a budget a Resize lowered meanwhile.
func setOK8(err error, full bool) bool {
	return err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrTooLarge) || full && errors.Is(err, ErrFull)
}

// TestWholeSetBoundary8 sets, reads, pins, replaces across the boundary and
// deletes entries of key+value exactly lockedCopyMax-1, lockedCopyMax and
// lockedCopyMax+1 bytes, empty values, and keys of MaxKeyLen, on a pool of
// the cache's own and a shared one; the replaced entry's bytes leave the
// budget exactly, and no Set is left in flight or promised.
func TestWholeSetBoundary8(t *testing.T) {
	for _, shared := range []bool{false, true} {
		opts := &Options{}
		if shared {
			p, err := pool.New(1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			opts.Pool = p
		}
		c := newT(t, 512<<10, opts)
		type kv struct{ k, v []byte }
		var cases []kv
		for _, klen := range []int{1, 12, lockedCopyMax - 1, lockedCopyMax, lockedCopyMax + 1, MaxKeyLen} {
			k := bytes.Repeat([]byte{byte(klen)}, klen)
			k[0] = 'k'
			for _, n := range []int{klen, lockedCopyMax - 1, lockedCopyMax, lockedCopyMax + 1, 3 * lockedCopyMax} {
				if n < klen {
					continue
				}
				v := make([]byte, n-klen)
				for i := range v {
					v[i] = byte(n + i*7)
				}
				cases = append(cases, kv{k, v})
			}
		}
		for i, a := range cases {
			setT(t, c, a.k, a.v)
			if got, ok := c.Get(nil, a.k); !ok || !bytes.Equal(got, a.v) {
				t.Fatalf("shared %v, case %d (key %d, value %d): get %v, %d bytes", shared, i, len(a.k), len(a.v), ok, len(got))
			}
			view, h, err := c.Pin(a.k)
			if err != nil || !bytes.Equal(view, a.v) {
				t.Fatalf("case %d: pin: %v", i, err)
			}
			// Replace it with the next case's value of the same key, across
			// the boundary, while the old one is pinned.
			b := cases[(i+1)%len(cases)]
			nv := append(bytes.Clone(b.v), 'x')
			setT(t, c, a.k, nv)
			if !bytes.Equal(view, a.v) {
				t.Fatalf("case %d: pinned view changed", i)
			}
			st := c.Stats()
			if want := int(c.weight(uint64(len(a.k)+len(a.v))) + c.weight(uint64(len(a.k)+len(nv)))); st.BytesUsed != want || st.Entries != 1 {
				t.Fatalf("case %d: with the old value pinned: %+v, want %d bytes used", i, st, want)
			}
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
			if got, ok := c.Get(nil, a.k); !ok || !bytes.Equal(got, nv) {
				t.Fatalf("case %d: replaced value: %v", i, ok)
			}
			if st := c.Stats(); st.BytesUsed != int(c.weight(uint64(len(a.k)+len(nv)))) {
				t.Fatalf("case %d: after release: %+v", i, st)
			}
			if ok, err := c.Delete(a.k); !ok || err != nil {
				t.Fatalf("case %d: delete: %v %v", i, ok, err)
			}
			if st := c.Stats(); st.BytesUsed != 0 || st.Entries != 0 {
				t.Fatalf("case %d: after delete: %+v", i, st)
			}
			quiet8(t, c)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if shared {
			if st := opts.Pool.Stats(); st.Used != 0 || st.UsedSegments != 0 {
				t.Fatalf("shared pool after close: %+v", st)
			}
			if err := opts.Pool.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestWholeSetFallsBack8 makes the pool refuse a short entry the budget has
// room for, so the whole path falls back to the two steps: on a pool of the
// cache's own split by pins into holes too small (ErrFull, the key's old
// value gone; once a pin is released the Set succeeds), on a shared pool
// full of another user's segments (ErrFull; once they go, it succeeds),
// and on a shared pool closed under the cache (ErrClosed, never nil). Each
// time the promise ends and no Set stays in flight, and Close does not hang.
func TestWholeSetFallsBack8(t *testing.T) {
	t.Run("split own pool", func(t *testing.T) {
		const n, count = 512, 64
		c := newT(t, n*count, nil)
		var hs []Handle
		for i := range count {
			setT(t, c, key(i), value(i, 0, n-len(key(i))))
		}
		if st := c.Stats(); st.Entries != count || st.BytesUsed != n*count {
			t.Fatalf("filled: %+v", st)
		}
		for i := 0; i < count; i += 2 {
			_, h, err := c.Pin(key(i))
			if err != nil {
				t.Fatal(err)
			}
			hs = append(hs, h)
		}
		for i := 1; i < count; i += 2 {
			if ok, err := c.Delete(key(i)); !ok || err != nil {
				t.Fatal(ok, err)
			}
		}
		// The budget has half its bytes free, the pool only holes of n.
		old := key(0) // pinned: its old value goes, but stays readable by its pin
		big := value(0, 1, lockedCopyMax-len(old))
		var err error
		within(t, "set into a split pool", func() { err = c.Set(old, big) })
		wantErr(t, err, ErrFull)
		if c.Has(old) {
			t.Fatal("the key's old value outlived a failed Set")
		}
		quiet8(t, c)
		setT(t, c, key(1), value(1, 1, n-len(key(1)))) // fits a hole: whole
		if err := hs[1].Release(); err != nil {        // key 2: its hole joins the neighbours'
			t.Fatal(err)
		}
		h0 := hs[0]
		hs = hs[2:]
		within(t, "set after a release", func() { err = c.Set(old, big) })
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := c.Get(nil, old); !ok || !bytes.Equal(got, big) {
			t.Fatal("the value set is not read back")
		}
		quiet8(t, c)
		if err := h0.Release(); err != nil { // key 0's old entry, gone
			t.Fatal(err)
		}
		for _, h := range hs {
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
		}
		quiet8(t, c)
		within(t, "close", func() { err = c.Close() })
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("shared pool full of another user's", func(t *testing.T) {
		p, err := pool.New(64<<10, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c := newT(t, 32<<10, &Options{Pool: p})
		setT(t, c, key(1), value(1, 0, 100))
		var foreign []pool.Ref
		for {
			r, err := p.Commit(make([]byte, 256))
			if err != nil {
				break
			}
			foreign = append(foreign, r)
		}
		// The pool's reclaim evicted key 1 for the other user.
		k := key(2)
		within(t, "set into a full shared pool", func() { err = c.Set(k, value(2, 0, 500)) })
		wantErr(t, err, ErrFull)
		quiet8(t, c)
		for _, r := range foreign[:8] {
			if err := p.Release(r); err != nil {
				t.Fatal(err)
			}
		}
		setT(t, c, k, value(2, 1, 500))
		quiet8(t, c)
		for _, r := range foreign[8:] {
			_ = p.Release(r)
		}
		within(t, "close", func() { err = c.Close() })
		if err != nil {
			t.Fatal(err)
		}
		if st := p.Stats(); st.Used != 0 {
			t.Fatalf("pool after close: %+v", st)
		}
	})
	t.Run("shared pool closed", func(t *testing.T) {
		p, err := pool.New(64<<10, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := newT(t, 32<<10, &Options{Pool: p})
		if err := p.Close(); err != nil { // the cache holds nothing latched
			t.Fatal(err)
		}
		for _, n := range []int{1, 100, lockedCopyMax - 3, lockedCopyMax + 1} {
			within(t, "set into a closed pool", func() { err = c.Set([]byte("key"), make([]byte, n)) })
			wantErr(t, err, ErrClosed)
			quiet8(t, c)
		}
		within(t, "close", func() { err = c.Close() })
		if err != nil {
			t.Fatal(err)
		}
	})
}

// dur8 is how long a stress test runs: shorter where everything is slower.
func dur8() time.Duration {
	if slow || testing.Short() {
		return 700 * time.Millisecond
	}
	return 1500 * time.Millisecond
}

// governor8 is a reclaimer of a shared pool that gives it room by
// shrinking one of the caches on it in turn (a memory governor): the
// pool's slow path, run by one cache's two-step Set or another user's
// commit, then waits for a cache's lock, which that cache's whole Sets
// hold while they take the pool's lock.
type governor8 struct {
	caches []*Cache
	calls  atomic.Int64
	err    atomic.Value
}

func (g *governor8) Reclaim(need int) int {
	c := g.caches[int(g.calls.Add(1))%len(g.caches)]
	before := c.Stats().BytesUsed
	if err := c.Resize(max(24<<10, before-need)); err != nil && !errors.Is(err, ErrFull) {
		g.err.CompareAndSwap(nil, err)
	}
	return max(0, before-c.Stats().BytesUsed)
}

// TestSharedPoolWholeSetsStress8 has three caches on one shared pool,
// their budgets together above its capacity, and another user keeping half
// of it committed, so that whole Sets (the pool's lock taken under each
// cache's mu), two-step Sets (the pool's slow path asking the other caches,
// each under its own mu, to reclaim), the other user's commits (asking all
// of them), a governor reclaimer that resizes the caches, Gets, Pins,
// Deletes and Resizes all run at once. Nothing may
// hang (lock order); no cache's used + gone + promised may exceed its
// budget at any moment; values read are never torn or foreign; every Set
// returning nil is counted stored; afterwards nothing is promised or in
// flight, and after Close the pool holds nothing of theirs.
func TestSharedPoolWholeSetsStress8(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const capacity, ncaches, nkeys = 256 << 10, 3, 400
	p, err := pool.New(capacity, nil)
	if err != nil {
		t.Fatal(err)
	}
	caches := make([]*Cache, ncaches)
	stored := make([]atomic.Int64, ncaches)
	for i := range caches {
		if caches[i], err = New(160<<10, &Options{Pool: p, MaxBudget: capacity}); err != nil {
			t.Fatal(err)
		}
	}
	var (
		stop, stopWatch atomic.Bool
		wg, watchWG     sync.WaitGroup
		errs            = make(chan error, 64)
	)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for ci, c := range caches {
		watchWG.Add(1)
		go func() {
			defer watchWG.Done()
			if err := budgetWatch8(c, &stopWatch); err != nil {
				fail(fmt.Errorf("cache %d: %w", ci, err))
			}
		}()
		for g := range 2 { // setters
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(ci), uint64(g)))
				for ver := 1; !stop.Load(); ver++ {
					i := r.IntN(nkeys)
					err := c.Set(key(i), value(i, ver, len8(r)))
					if err == nil {
						stored[ci].Add(1)
					} else if !setOK8(err, true) {
						fail(fmt.Errorf("cache %d: set: %w", ci, err))
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() { // readers, pinners, deleters
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(ci), 99))
			buf := make([]byte, 0, 8<<10)
			for !stop.Load() {
				i := r.IntN(nkeys)
				switch r.IntN(8) {
				case 0:
					if _, err := c.Delete(key(i)); err != nil {
						fail(fmt.Errorf("cache %d: delete: %w", ci, err))
						return
					}
				case 1:
					hd, ok, err := pinValid(c, i)
					if err != nil {
						fail(fmt.Errorf("cache %d: %w", ci, err))
						return
					}
					if ok {
						runtime.Gosched()
						if !bytes.Equal(hd.view, hd.val) {
							fail(fmt.Errorf("cache %d: pinned view of key %d changed", ci, i))
						}
						if err := hd.h.Release(); err != nil {
							fail(fmt.Errorf("cache %d: release: %w", ci, err))
							return
						}
					}
				default:
					var ok bool
					if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
						fail(fmt.Errorf("cache %d: key %d: torn or foreign value", ci, i))
						return
					}
				}
			}
		}()
		wg.Add(1)
		go func() { // a resizer
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(ci), 7))
			sizes := []int{24 << 10, 64 << 10, 160 << 10, capacity}
			for !stop.Load() {
				if err := c.Resize(sizes[r.IntN(len(sizes))]); err != nil && !errors.Is(err, ErrFull) {
					fail(fmt.Errorf("cache %d: resize: %w", ci, err))
					return
				}
				time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
			}
		}()
	}
	gov := &governor8{caches: caches}
	if err := p.AddReclaimer(gov); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := hog(p, capacity, &stop); err != nil {
			fail(err)
		}
	}()
	within(t, "caches on a shared pool", func() {
		time.Sleep(dur8())
		stop.Store(true)
		wg.Wait()
		stopWatch.Store(true)
		watchWG.Wait()
	})
	p.RemoveReclaimer(gov)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err, _ := gov.err.Load().(error); err != nil {
		t.Error(err)
	}
	t.Logf("pool %+v; the governor resized %d times", p.Stats(), gov.calls.Load())
	for ci, c := range caches {
		t.Logf("cache %d: %+v", ci, c.Stats())
		quiet8(t, c)
		if st := c.Stats(); int64(st.Sets) != stored[ci].Load() {
			t.Errorf("cache %d: Stats counts %d Sets stored, %d returned nil", ci, st.Sets, stored[ci].Load())
		}
		within(t, "close", func() { err = c.Close() })
		if err != nil {
			t.Error(err)
		}
	}
	if st := p.Stats(); st.Used != 0 || st.UsedSegments != 0 {
		t.Errorf("pool after every cache closed: %+v", st)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOwnedWholeSetsResizeStrict8 mixes whole and two-step Sets with Gets,
// Deletes and a resizer that shrinks (rebuilds: nothing is pinned) and
// grows a cache with a pool of its own, where nothing is pinned: no Set may
// fail but for the policy's rejection (never ErrFull: everything is
// evictable, and the promises of whole Sets end unseen), every Resize must
// succeed (it waits for two-step Sets; a whole Set never leaves it waiting),
// nothing may hang, and the budget holds at every moment.
func TestOwnedWholeSetsResizeStrict8(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	c := newT(t, 128<<10, &Options{MaxBudget: 256 << 10})
	var (
		stop, stopWatch atomic.Bool
		wg              sync.WaitGroup
		stored          atomic.Int64
		errs            = make(chan error, 16)
	)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(8, uint64(g)))
			buf := make([]byte, 0, 8<<10)
			for ver := 1; !stop.Load(); ver++ {
				i := r.IntN(300)
				switch r.IntN(6) {
				case 0:
					if _, err := c.Delete(key(i)); err != nil {
						fail(err)
						return
					}
				case 1:
					var ok bool
					if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
						fail(fmt.Errorf("key %d: torn or foreign value", i))
						return
					}
				default:
					err := c.Set(key(i), value(i, ver, len8(r)))
					if err == nil {
						stored.Add(1)
					} else if !errors.Is(err, ErrRejected) {
						fail(fmt.Errorf("set of %d bytes: %w", len(key(i)), err))
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(8, 8))
		sizes := []int{16 << 10, 40 << 10, 128 << 10, 256 << 10}
		for !stop.Load() {
			if err := c.Resize(sizes[r.IntN(len(sizes))]); err != nil {
				fail(fmt.Errorf("resize with nothing pinned: %w", err))
				return
			}
			time.Sleep(time.Duration(r.IntN(1500)) * time.Microsecond)
		}
	}()
	var watchErr error
	done := make(chan struct{})
	go func() { defer close(done); watchErr = budgetWatch8(c, &stopWatch) }()
	within(t, "owned cache with resizes", func() {
		time.Sleep(dur8())
		stop.Store(true)
		wg.Wait()
		stopWatch.Store(true)
		<-done
	})
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if watchErr != nil {
		t.Error(watchErr)
	}
	quiet8(t, c)
	if st := c.Stats(); int64(st.Sets) != stored.Load() || st.Rebuilds == 0 {
		t.Errorf("Stats %+v: %d Sets returned nil", st, stored.Load())
	}
}

// TestCloseRacingWholeSets8 closes caches (own pool and shared) while
// goroutines set entries on both paths until they see ErrClosed: Close
// waits now only for the two-step Sets. A Set that returns nil must be
// counted in the Stats frozen at Close (it stored before Close began); a
// Set begun after Close returned must not return nil; the only errors are
// ErrClosed and the policy's; a shared pool then holds only the other
// user's segment; nothing hangs.
func TestCloseRacingWholeSets8(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	rounds := 30
	if slow {
		rounds = 12
	}
	for round := range rounds {
		shared := round%2 == 1
		opts := &Options{}
		var foreign pool.Ref
		if shared {
			p, err := pool.New(96<<10, nil)
			if err != nil {
				t.Fatal(err)
			}
			if foreign, err = p.Commit(make([]byte, 16<<10)); err != nil {
				t.Fatal(err)
			}
			opts.Pool = p
		}
		c, err := New(64<<10, opts)
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg             sync.WaitGroup
			stored, late   atomic.Int64
			closedReturned atomic.Bool
			errs           = make(chan error, 8)
		)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for ver := 1; ; ver++ {
					after := closedReturned.Load()
					i := r.IntN(200)
					err := c.Set(key(i), value(i, ver, len8(r)))
					switch {
					case err == nil:
						stored.Add(1)
						if after {
							late.Add(1)
						}
					case errors.Is(err, ErrClosed):
						return
					case errors.Is(err, ErrRejected):
					default:
						errs <- fmt.Errorf("round %d: set: %w", round, err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(500+rand.IntN(3000)) * time.Microsecond)
		within(t, "close racing sets", func() { err = c.Close() })
		closedReturned.Store(true)
		if err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		within(t, "sets after close", wg.Wait)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := late.Load(); n != 0 {
			t.Fatalf("round %d: %d Sets begun after Close returned nil", round, n)
		}
		if st := c.Stats(); int64(st.Sets) != stored.Load() {
			t.Fatalf("round %d: Stats frozen at Close count %d Sets, %d returned nil", round, st.Sets, stored.Load())
		}
		if p := opts.Pool; p != nil {
			if st := p.Stats(); st.UsedSegments != 1 || st.Used != 16<<10 {
				t.Fatalf("round %d: pool after close: %+v", round, st)
			}
			if err := p.Release(foreign); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLoadSupersededOnWholePath8 checks the loader's contract where the
// load's value, short or long, takes the whole path or the two steps: a Set
// or Delete made while the load runs wins (the load's value is returned to
// its caller but not stored); and, under a race of a setter (that also
// deletes) with loaders of the same key, the value held at the end is the
// last Set's.
func TestLoadSupersededOnWholePath8(t *testing.T) {
	c := newT(t, 1<<20, nil)
	ctx := context.Background()
	k := []byte("the-key-0001") // 12 bytes, as key(i)
	for _, n := range []int{1, 100, lockedCopyMax - len(k), lockedCopyMax - len(k) + 1, 3000} {
		for _, act := range []string{"set", "delete"} {
			if _, err := c.Delete(k); err != nil {
				t.Fatal(err)
			}
			loaded := bytes.Repeat([]byte{'L'}, n)
			setv := bytes.Repeat([]byte{'S'}, n)
			started, release := make(chan struct{}), make(chan struct{})
			var got []byte
			var lerr error
			done := make(chan struct{})
			go func() {
				defer close(done)
				got, lerr = c.GetOrLoad(ctx, nil, k, func(context.Context, []byte) ([]byte, error) {
					close(started)
					<-release
					return loaded, nil
				})
			}()
			<-started
			switch act {
			case "set":
				setT(t, c, k, setv)
			default:
				if _, err := c.Delete(k); err != nil {
					t.Fatal(err)
				}
			}
			close(release)
			within(t, "load", func() { <-done })
			if lerr != nil || !bytes.Equal(got, loaded) {
				t.Fatalf("%d bytes, %s: the load returned %v, %d bytes", n, act, lerr, len(got))
			}
			v, ok := c.Get(nil, k)
			switch {
			case act == "set" && (!ok || !bytes.Equal(v, setv)):
				t.Fatalf("%d bytes: a load superseded by a Set overwrote it (hit %v, %.4q)", n, ok, v)
			case act == "delete" && ok:
				t.Fatalf("%d bytes: a load superseded by a Delete undid it (%.4q)", n, v)
			}
			quiet8(t, c)
		}
	}

	rounds := 200
	if slow {
		rounds = 60
	}
	r := rand.New(rand.NewPCG(8, 88))
	for round := range rounds {
		var (
			wg   sync.WaitGroup
			stop atomic.Bool
			last []byte
			errs = make(chan error, 4)
		)
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				lr := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for j := 0; !stop.Load() || j < 3; j++ {
					n := len8(lr)
					_, err := c.GetOrLoad(ctx, nil, k, func(context.Context, []byte) ([]byte, error) {
						return value(1, 1<<20+j, n), nil
					})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for ver := 1; ver <= 20; ver++ {
			if r.IntN(3) == 0 {
				if _, err := c.Delete(k); err != nil {
					t.Fatal(err)
				}
				runtime.Gosched()
			}
			last = value(1, ver, len8(r))
			setT(t, c, k, last)
		}
		stop.Store(true)
		within(t, "loads", wg.Wait)
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if v, ok := c.Get(nil, k); !ok || !bytes.Equal(v, last) {
			t.Fatalf("round %d: after the last Set (%d bytes) returned and every load ended: hit %v, %d bytes, version %v",
				round, len(last), ok, len(v), v[4:8])
		}
	}
	quiet8(t, c)
}

// TestWholeSetAllocs8 checks that a Set at capacity, evicting, allocates
// nothing: entries of 40 bytes, then of lockedCopyMax bytes, on a pool of
// the cache's own and a shared one. After the short entries the pool's
// free space stays split in two holes that together hold one long entry,
// so the budget has room for a Set that the pool cannot place at once: the
// whole path's TryReserve fails, and so does the two-step path's before it
// evicts. Each failure built a formatted error (11 allocations a Set at
// 553ec49, 5 before it, whose Set tried once); TryReserve now fails with
// the bare ErrFull.
func TestWholeSetAllocs8(t *testing.T) {
	if check.On {
		t.Skip("the checked build allocates in its checks")
	}
	for _, shared := range []bool{false, true} {
		opts := &Options{}
		if shared {
			p, err := pool.New(256<<10, nil)
			if err != nil {
				t.Fatal(err)
			}
			opts.Pool = p
		}
		c := newT(t, 64<<10, opts)
		keys := make([][]byte, 4000)
		for i := range keys {
			keys[i] = key(i)
		}
		for _, n := range []int{40, lockedCopyMax} {
			v := value(0, 0, n-len(keys[0]))
			for _, k := range keys { // at capacity
				_ = c.Set(k, v)
			}
			refused := c.cur().p.Stats().FailedCommits
			var i int
			var bad error
			f := func() {
				i++
				if err := c.Set(keys[i%len(keys)], v); err != nil && err != ErrRejected && bad == nil {
					bad = err
				}
			}
			if a := testing.AllocsPerRun(1000, f); a != 0 {
				t.Errorf("shared %v, %d bytes: Set at capacity: %v allocs/op", shared, n, a)
			}
			if bad != nil {
				t.Fatal(bad)
			}
			if st := c.Stats(); st.Evictions == 0 {
				t.Fatalf("nothing evicted: %+v", st)
			}
			if refused = c.cur().p.Stats().FailedCommits - refused; !shared && n == lockedCopyMax && refused == 0 {
				t.Fatal("the pool refused no reservation: the test no longer splits its free space")
			}
		}
		quiet8(t, c)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if p := opts.Pool; p != nil {
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// FuzzWholeSet8 is FuzzCache's model with entries around lockedCopyMax and
// budgets a few of them large, keys up to a few KiB, a small shared pool
// (so whole Sets often find it full and fall back) with another user
// committing to it, and a check after each operation that no Set's
// promise or in-flight count was left behind.
func FuzzWholeSet8(f *testing.F) {
	f.Add([]byte{0, 3, 0, 2, 1, 0, 3, 2, 2, 1, 0, 4, 3, 5, 1, 7, 0, 8, 40, 1, 2, 5})
	f.Add([]byte{1, 5, 9, 0, 1, 4, 0, 2, 3, 9, 200, 0, 5, 5, 0, 6, 2, 1, 7, 1, 4, 3, 10, 2, 8, 30, 0, 3, 3})
	f.Add(bytes.Repeat([]byte{0, 2, 2, 5, 2, 3, 0, 1, 1, 5, 1, 6, 8, 60, 7, 0}, 10))
	f.Add(bytes.Repeat([]byte{3, 9, 250, 0, 4, 5, 9, 120, 1, 6, 2, 6, 10, 1, 0, 3, 2, 4}, 10))
	f.Add(bytes.Repeat([]byte{1, 0, 3, 4, 0, 4, 4, 9, 255, 5, 4, 3, 0, 6, 5, 8, 7, 2}, 12))
	f.Fuzz(fuzzWholeSet8)
}

func fuzzWholeSet8(t *testing.T, data []byte) {
	ops := fuzzops.New(data)
	m := newFuzzModel(t, ops, fuzzSizes{budget: 2048, budgetStep: 512, maxBudget: 16 << 10, align: 8, alignShifts: 4, pool: 4096, poolStep: 512})
	key := func() []byte {
		n := ops.Intn(8)
		k := strings.Repeat("k", 1+n%3) + fmt.Sprint(n)
		if n == 7 { // a key the whole path cannot take, however short the value
			k = strings.Repeat("K", lockedCopyMax+1)
		}
		return []byte(k)
	}
	val := func(k []byte) []byte {
		var n int
		switch ops.Intn(6) {
		case 0:
			n = 0
		case 1:
			n = lockedCopyMax - len(k) - 1
		case 2:
			n = lockedCopyMax - len(k)
		case 3:
			n = lockedCopyMax - len(k) + 1
		case 4:
			n = ops.Intn(64) * 8
		default:
			n = lockedCopyMax + ops.Intn(32)*64
		}
		return bytes.Repeat([]byte{byte(ops.Byte())}, max(n, 0))
	}
	for ops.More() {
		switch op := ops.Intn(11); op {
		case 0, 1, 2:
			k := key()
			m.set(k, val(k))
		case 3:
			m.get(key())
		case 4:
			m.del(key())
		case 5, 6:
			m.pin(key())
		case 7:
			m.release(ops.Byte())
		case 8:
			m.resize(1024 + ops.Byte()*64)
		case 9:
			m.commitForeign(ops.Byte() * 16)
		case 10:
			m.releaseForeign(ops.Byte())
		}
		m.check()
		quiet8(t, m.c)
		if t.Failed() {
			t.FailNow()
		}
	}
	m.closeAll()
}
