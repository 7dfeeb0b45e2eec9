package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
	"github.com/offheap/offheap/pool"
	"github.com/offheap/offheap/vmem"
)

// slow is true in the race detector's and the checked build, where the
// tests that fill large caches use smaller ones.
const slow = proc.Race || check.On

func newT(t testing.TB, budget int, opts *Options) *Cache {
	t.Helper()
	c, err := New(budget, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

func setT(t testing.TB, c *Cache, k, v []byte) {
	t.Helper()
	if err := c.Set(k, v); err != nil {
		t.Fatalf("set %q: %v", k, err)
	}
}

func wantErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

func key(i int) []byte { return []byte(fmt.Sprintf("key-%08d", i)) }

// value returns n bytes that identify key i's version v and end in a
// checksum, so a torn or foreign value is recognised.
func value(i, v, n int) []byte {
	b := make([]byte, max(n, 12))
	binary.LittleEndian.PutUint32(b, uint32(i))
	binary.LittleEndian.PutUint32(b[4:], uint32(v))
	for j := 8; j < len(b)-4; j++ {
		b[j] = byte(i*7 + v*13 + j)
	}
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.ChecksumIEEE(b[:len(b)-4]))
	return b
}

// valid reports whether b is a value made by value for key i.
func valid(b []byte, i int) bool {
	return len(b) >= 12 && binary.LittleEndian.Uint32(b) == uint32(i) &&
		crc32.ChecksumIEEE(b[:len(b)-4]) == binary.LittleEndian.Uint32(b[len(b)-4:])
}

func TestSetGetDelete(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			var opts *Options
			if shared {
				p, err := pool.New(1<<20, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				opts = &Options{Pool: p}
			}
			c := newT(t, 1<<20, opts)
			for i := range 1000 {
				setT(t, c, key(i), value(i, 0, i%200))
			}
			for i := range 1000 {
				v, ok := c.Get(nil, key(i))
				if !ok || !bytes.Equal(v, value(i, 0, i%200)) {
					t.Fatalf("get %d: %v", i, ok)
				}
			}
			setT(t, c, key(7), []byte("replaced"))
			if v, _ := c.Get([]byte("x"), key(7)); string(v) != "xreplaced" {
				t.Fatalf("replaced value %q", v)
			}
			if ok, err := c.Delete(key(7)); !ok || err != nil {
				t.Fatalf("delete: %v %v", ok, err)
			}
			if ok, err := c.Delete(key(7)); ok || err != nil {
				t.Fatalf("second delete: %v %v", ok, err)
			}
			if _, ok := c.Get(nil, key(7)); ok || c.Has(key(7)) || !c.Has(key(8)) {
				t.Fatal("deleted key still held, or Has wrong")
			}
			st := c.Stats()
			if st.Entries != 999 || c.Len() != 999 || st.Sets != 1001 || st.Deletes != 1 || st.Hits != 1001 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestBudgetEvicts(t *testing.T) {
	c := newT(t, 64<<10, nil)
	n := 10000
	if slow {
		n = 2000
	}
	for i := range n {
		setT(t, c, key(i), value(i, 0, 100))
		if i%16 > 0 && (slow || i > 2000) {
			continue // the checked build checks the budget after every Set itself
		}
		if st := c.Stats(); st.BytesUsed > st.Budget {
			t.Fatalf("after %d sets: %d bytes used of %d", i, st.BytesUsed, st.Budget)
		}
	}
	st := c.Stats()
	if st.Evictions == 0 || st.BytesUsed < 60<<10 || st.Entries*112 != st.BytesUsed { // 12-byte keys, 100-byte values
		t.Fatalf("stats %+v", st)
	}
	// The newest entry is always held (readable at once).
	if _, ok := c.Get(nil, key(n-1)); !ok {
		t.Fatal("last set not held")
	}
}

func TestPinSurvivesDeleteReplaceEvict(t *testing.T) {
	c := newT(t, 16<<10, nil)
	setT(t, c, key(1), value(1, 1, 500))
	view, h, err := c.Pin(key(1))
	if err != nil {
		t.Fatal(err)
	}
	view2, h2, err := c.Pin(key(1))
	if err != nil || &view[0] != &view2[0] {
		t.Fatalf("second pin: %v", err)
	}
	setT(t, c, key(1), value(1, 2, 500)) // replaced while pinned
	for i := 2; i < 500; i++ {           // churn: evicts everything unpinned
		setT(t, c, key(i), value(i, 0, 300))
	}
	if !bytes.Equal(view, value(1, 1, 500)) {
		t.Fatal("pinned view changed")
	}
	st := c.Stats()
	if st.BytesPinned != 512 || st.Handles != 2 || st.BytesUsed > st.Budget {
		t.Fatalf("stats with a replaced pinned entry: %+v", st)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, h.Release(), ErrReleased) // the other pin is untouched
	if !bytes.Equal(view2, value(1, 1, 500)) {
		t.Fatal("pinned view changed after the other handle's release")
	}
	used := c.Stats().BytesUsed
	if err := h2.Release(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.BytesPinned != 0 || st.Handles != 0 || st.BytesUsed != used-512 {
		t.Fatalf("after the last release: %+v (used %d before)", st, used)
	}
}

func TestFullWhenEverythingPinned(t *testing.T) {
	c := newT(t, 4096, nil)
	var hs []Handle
	for i := 0; ; i++ {
		err := c.Set(key(i), value(i, 0, 500))
		if err != nil {
			wantErr(t, err, ErrFull)
			break
		}
		_, h, err := c.Pin(key(i))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	st := c.Stats()
	if st.BytesUsed != st.BytesPinned || st.BytesUsed > 4096 || st.Evictions != 0 {
		t.Fatalf("stats %+v", st)
	}
	for _, h := range hs {
		_ = h.Release()
	}
	setT(t, c, key(100), value(100, 0, 500)) // room again
}

// TestNewOnClosedPool makes a cache on a shared pool already closed: New
// fails with the cache's ErrClosed, not only the pool's.
func TestNewOnClosedPool(t *testing.T) {
	p, err := pool.New(64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := New(1<<10, &Options{Pool: p})
	if c != nil {
		t.Fatal("New on a closed pool returned a cache")
	}
	wantErr(t, err, ErrClosed)
	wantErr(t, err, pool.ErrClosed)
}

func TestBadInputChangesNothing(t *testing.T) {
	c := newT(t, 4096, nil)
	setT(t, c, key(1), value(1, 0, 100))
	before := c.Stats()
	big := make([]byte, MaxKeyLen+1)
	for _, tc := range []struct {
		name string
		err  error
		do   func() error
	}{
		{"set empty key", ErrEmptyKey, func() error { return c.Set(nil, []byte("v")) }},
		{"set oversized key", ErrKeyTooLarge, func() error { return c.Set(big, nil) }},
		{"set value over the budget", ErrTooLarge, func() error { return c.Set(key(1), make([]byte, 4096)) }},
		{"pin empty key", ErrEmptyKey, func() error { _, _, err := c.Pin(nil); return err }},
		{"delete oversized key", ErrKeyTooLarge, func() error { _, err := c.Delete(big); return err }},
		{"release zero handle", ErrReleased, func() error { return Handle{}.Release() }},
		{"release forged handle", ErrReleased, func() error { return Handle{c: c, h: 1<<40 | 77}.Release() }},
		{"resize to 0", ErrInvalid, func() error { return c.Resize(0) }},
		{"resize past MaxBudget", ErrTooLarge, func() error { return c.Resize(8192) }},
		{"load with no loader", ErrInvalid, func() error { _, err := c.GetOrLoad(context.Background(), nil, key(2), nil); return err }},
	} {
		wantErr(t, tc.do(), tc.err)
		if after := c.Stats(); after != before {
			t.Fatalf("%s changed the stats: %+v, was %+v", tc.name, after, before)
		}
	}
	if v, ok := c.Get(nil, key(1)); !ok || !bytes.Equal(v, value(1, 0, 100)) {
		t.Fatal("a rejected Set of an existing key changed it")
	}
	for _, bad := range []struct {
		budget int
		opts   *Options
	}{{0, nil}, {-1, nil}, {100, &Options{MaxBudget: 50}}, {100, &Options{MaxEntries: -1}}} {
		if _, err := New(bad.budget, bad.opts); !errors.Is(err, ErrInvalid) {
			t.Fatalf("New(%d, %+v): %v", bad.budget, bad.opts, err)
		}
	}
}

func TestErrorText(t *testing.T) {
	c := newT(t, 4096, &Options{Name: "blocks"})
	if got, want := c.Set(nil, nil).Error(), `cache "blocks": set key of 0 bytes: empty key`; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	c2 := newT(t, 4096, nil)
	if got, want := c2.Set(nil, nil).Error(), `cache: set key of 0 bytes: empty key`; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
	// An entry too large only once the pool rounds it up says so.
	p, err := pool.New(1<<20, &pool.Options{Alignment: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() }) // after the cache's Close (cleanups run last first)
	c3 := newT(t, 3000, &Options{Pool: p})
	if got, want := c3.Set([]byte("a"), []byte("b")).Error(), `cache: set key of 1 bytes: entry of 2 bytes (4096 in the pool): larger than the budget`; got != want {
		t.Fatalf("error %q, want %q", got, want)
	}
}

func TestClose(t *testing.T) {
	c, err := New(1<<16, nil)
	if err != nil {
		t.Fatal(err)
	}
	setT(t, c, key(1), value(1, 0, 10))
	_, h, err := c.Pin(key(1))
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.Close(), ErrBusy)
	setT(t, c, key(2), value(2, 0, 10)) // still usable
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	st := c.Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr(t, c.Close(), ErrClosed)
	wantErr(t, c.Set(key(3), nil), ErrClosed)
	_, _, err = c.Pin(key(1))
	wantErr(t, err, ErrClosed)
	_, err = c.Delete(key(1))
	wantErr(t, err, ErrClosed)
	wantErr(t, c.Resize(100), ErrClosed)
	wantErr(t, h.Release(), ErrClosed)
	_, err = c.GetOrLoad(context.Background(), nil, key(9), func(context.Context, []byte) ([]byte, error) { return nil, nil })
	wantErr(t, err, ErrClosed)
	if _, ok := c.Get(nil, key(2)); ok || c.Has(key(2)) || c.Len() != 0 {
		t.Fatal("closed cache hit")
	}
	if after := c.Stats(); after.Sets != st.Sets || after.Hits != st.Hits || after.Entries != 0 || after.BytesUsed != 0 {
		t.Fatalf("stats after close %+v, before %+v", after, st)
	}
}

// TestConcurrentPins has 8 goroutines pin, get, set and delete over shared
// keys while another resizes (compacting) and the budget forces evictions.
// Each checks that every view it holds never changes (so no pinned entry is
// evicted, moved or overwritten), that every value it reads is whole, and
// that a key it owns and pinned is never evicted.
func TestConcurrentPins(t *testing.T) {
	c := newT(t, 256<<10, &Options{MaxBudget: 512 << 10})
	const keys = 4000
	dur := 300 * time.Millisecond
	if testing.Short() || check.On {
		dur = 100 * time.Millisecond
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- pinWorker(c, g, keys, &stop)
		}()
	}
	wg.Add(1)
	go func() { // resizes, so compactions move entries under the readers
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if err := c.Resize((128 + 128*(i%3)) << 10); err != nil && !errors.Is(err, ErrFull) {
				errs <- err
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		errs <- nil
	}()
	stopAfter(t, dur, &stop, &wg, errs)
	st := c.Stats()
	if st.Handles != 0 || st.BytesPinned != 0 || st.BytesUsed > st.Budget || st.Compactions+st.Rebuilds == 0 {
		t.Fatalf("stats after the run: %+v", st)
	}
}

type held struct {
	i    int
	val  []byte
	view []byte
	h    Handle
	own  bool // pinned by the key's owner, who has not changed it since
}

func pinWorker(c *Cache, g, keys int, stop *atomic.Bool) error {
	var pins []held
	check := func() error {
		for _, p := range pins {
			if !bytes.Equal(p.view, p.val) {
				return fmt.Errorf("goroutine %d: pinned view of key %d changed", g, p.i)
			}
			if p.own && !c.Has(key(p.i)) {
				return fmt.Errorf("goroutine %d: owned pinned key %d was evicted", g, p.i)
			}
		}
		return nil
	}
	drop := func(i int) {
		for j := range pins { // the owner changes key i: its pins no longer vouch for it
			if pins[j].i == i {
				pins[j].own = false
			}
		}
	}
	var buf []byte
	for n := 0; !stop.Load(); n++ {
		i := (n*7919 + g*104729) % keys
		own := i%8 == g
		switch n % 10 {
		case 0, 1, 2:
			if own {
				drop(i)
				if err := c.Set(key(i), value(i, n, 50+n%400)); err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) {
					return err
				}
			}
		case 3:
			if own {
				drop(i)
				if _, err := c.Delete(key(i)); err != nil {
					return err
				}
			}
		case 4, 5:
			v, h, err := c.Pin(key(i))
			if err == ErrNotFound {
				continue
			}
			if err != nil {
				return err
			}
			if !valid(v, i) {
				return fmt.Errorf("goroutine %d: pinned key %d holds a bad value", g, i)
			}
			pins = append(pins, held{i, bytes.Clone(v), v, h, own})
		case 6, 7:
			if len(pins) > 0 {
				k := n % len(pins)
				if err := pins[k].h.Release(); err != nil {
					return err
				}
				pins = append(pins[:k], pins[k+1:]...)
			}
		default:
			var ok bool
			if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
				return fmt.Errorf("goroutine %d: key %d read a bad value", g, i)
			}
		}
		if n%50 == 0 {
			if err := check(); err != nil {
				return err
			}
		}
	}
	if err := check(); err != nil {
		return err
	}
	for _, p := range pins {
		if err := p.h.Release(); err != nil {
			return err
		}
	}
	return nil
}

// TestConcurrentReadersAndWriters runs lock-free readers against writers
// that churn the same keys, and checks every value read is whole.
func TestConcurrentReadersAndWriters(t *testing.T) {
	c := newT(t, 128<<10, nil)
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for n := 0; !stop.Load(); n++ {
				i := (n + g*31) % 500
				if g%2 == 0 {
					_ = c.Set(key(i), value(i, n, 20+n%900))
					continue
				}
				var ok bool
				if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
					bad.Add(1)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d torn or foreign values read", bad.Load())
	}
}

func TestHandlesAcrossGoroutines(t *testing.T) {
	c := newT(t, 1<<20, nil)
	setT(t, c, key(1), value(1, 0, 64))
	hs := make(chan Handle, 1000)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() { // pins here, released elsewhere: the per-P caches spill and refill
			defer wg.Done()
			for range 250 {
				_, h, err := c.Pin(key(1))
				if err != nil {
					t.Error(err)
					return
				}
				hs <- h
			}
		}()
	}
	wg.Wait()
	close(hs)
	var rel sync.WaitGroup
	for range 3 {
		rel.Add(1)
		go func() {
			defer rel.Done()
			for h := range hs {
				if err := h.Release(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	rel.Wait()
	if st := c.Stats(); st.Handles != 0 || st.BytesPinned != 0 {
		t.Fatalf("after releasing every handle: %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLoaderOneLoadForManyMisses(t *testing.T) {
	c := newT(t, 1<<20, nil)
	var loads atomic.Int64
	release := make(chan struct{})
	load := func(ctx context.Context, k []byte) ([]byte, error) {
		loads.Add(1)
		<-release
		return append([]byte("loaded:"), k...), nil
	}
	base := runtime.NumGoroutine()
	const n = 1000
	var wg, started sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			started.Done()
			v, err := c.GetOrLoad(context.Background(), nil, []byte("k"), load)
			if err == nil && string(v) != "loaded:k" {
				err = fmt.Errorf("value %q", v)
			}
			errs <- err
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond) // let them all miss
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if loads.Load() != 1 {
		t.Fatalf("%d loads for one key", loads.Load())
	}
	if st := c.Stats(); st.Loads != 1 || st.Entries != 1 {
		t.Fatalf("stats %+v", st)
	}
	waitGoroutines(t, base)
}

func TestLoaderFailureNotCached(t *testing.T) {
	c := newT(t, 1<<20, nil)
	boom := errors.New("boom")
	calls := 0
	load := func(context.Context, []byte) ([]byte, error) {
		if calls++; calls == 1 {
			return nil, boom
		}
		return []byte("ok"), nil
	}
	_, err := c.GetOrLoad(context.Background(), nil, []byte("k"), load)
	wantErr(t, err, boom)
	if c.Has([]byte("k")) {
		t.Fatal("failed load cached")
	}
	v, err := c.GetOrLoad(context.Background(), nil, []byte("k"), load)
	if err != nil || string(v) != "ok" || calls != 2 {
		t.Fatalf("second load: %q %v (%d calls)", v, err, calls)
	}
	v, err = c.GetOrLoad(context.Background(), []byte("x"), []byte("k"), load)
	if err != nil || string(v) != "xok" || calls != 2 {
		t.Fatalf("cached: %q %v (%d calls)", v, err, calls)
	}
	_, err = c.GetOrLoad(context.Background(), nil, []byte("p"), func(context.Context, []byte) ([]byte, error) { panic("loader bug") })
	if err == nil {
		t.Fatal("a panicking loader succeeded")
	}
	if st := c.Stats(); st.LoadErrors != 2 || st.Loads != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLoaderContextCancelsWait(t *testing.T) {
	c := newT(t, 1<<20, nil)
	base := runtime.NumGoroutine()
	loadCtx := make(chan context.Context, 1)
	load := func(ctx context.Context, k []byte) ([]byte, error) {
		loadCtx <- ctx
		<-ctx.Done() // a slow load that honours cancellation
		return nil, ctx.Err()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := c.GetOrLoad(ctx, nil, []byte("slow"), load)
		done <- err
	}()
	lctx := <-loadCtx
	cancel()
	select {
	case err := <-done:
		wantErr(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not end the wait")
	}
	select {
	case <-lctx.Done(): // the last waiter left: the load is cancelled too
	case <-time.After(5 * time.Second):
		t.Fatal("load not cancelled after every waiter left")
	}
	waitGoroutines(t, base)
}

// TestLoaderContextDoneAlready misses with a context cancelled before the
// call: every call returns the context's error, none starts a load (which
// used to run, and race its value against the error), and a hit still
// returns the value.
func TestLoaderContextDoneAlready(t *testing.T) {
	c := newT(t, 1<<20, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var loads atomic.Int64
	load := func(context.Context, []byte) ([]byte, error) {
		loads.Add(1)
		return []byte("v"), nil
	}
	for i := range 100 {
		_, err := c.GetOrLoad(ctx, nil, key(i), load)
		wantErr(t, err, context.Canceled)
	}
	if loads.Load() != 0 || c.Len() != 0 {
		t.Fatalf("%d loads, %d entries with a context done before the calls", loads.Load(), c.Len())
	}
	setT(t, c, key(0), []byte("held"))
	if v, err := c.GetOrLoad(ctx, nil, key(0), load); err != nil || string(v) != "held" {
		t.Fatalf("hit with a done context: %q %v", v, err)
	}
}

// TestLoaderCancelledByClose closes the cache under a waiting GetOrLoad
// whose loader honours its context: the caller, whose own context is live,
// gets ErrClosed as well as the load's context.Canceled, and no goroutine
// is left.
func TestLoaderCancelledByClose(t *testing.T) {
	c, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	started := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := c.GetOrLoad(context.Background(), nil, []byte("k"), func(ctx context.Context, _ []byte) ([]byte, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
		done <- err
	}()
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// Both: the load was cancelled, and by Close, not by the caller's own
	// context (context.Canceled alone read as the caller's).
	err = <-done
	wantErr(t, err, ErrClosed)
	wantErr(t, err, context.Canceled)
	waitGoroutines(t, base)
}

// TestLoaderReentrantSameKey has a loader call GetOrLoad for its own key
// with its context: that would wait for itself, so it gets ErrInvalid, and
// the outer load fails with it instead of hanging and leaking the flight.
func TestLoaderReentrantSameKey(t *testing.T) {
	c := newT(t, 1<<20, nil)
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var load Loader
	load = func(ctx context.Context, k []byte) ([]byte, error) {
		return c.GetOrLoad(ctx, nil, k, load)
	}
	_, err := c.GetOrLoad(ctx, nil, []byte("k"), load)
	wantErr(t, err, ErrInvalid)
	// A cycle through another key is caught the same way.
	var a, b Loader
	a = func(ctx context.Context, _ []byte) ([]byte, error) { return c.GetOrLoad(ctx, nil, []byte("b"), b) }
	b = func(ctx context.Context, _ []byte) ([]byte, error) { return c.GetOrLoad(ctx, nil, []byte("a"), a) }
	_, err = c.GetOrLoad(ctx, nil, []byte("a"), a)
	wantErr(t, err, ErrInvalid)
	if c.Len() != 0 {
		t.Fatalf("%d entries after failed loads", c.Len())
	}
	waitGoroutines(t, base)
}

// TestLoaderGoexitEndsLoad has a loader call runtime.Goexit (as t.FailNow
// does): the load fails, and its waiters are not left waiting for ever.
func TestLoaderGoexitEndsLoad(t *testing.T) {
	c := newT(t, 1<<20, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.GetOrLoad(ctx, nil, []byte("k"), func(context.Context, []byte) ([]byte, error) {
		runtime.Goexit()
		return nil, nil
	})
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the load to fail at once", err)
	}
	if st := c.Stats(); st.Loads != 1 || st.LoadErrors != 1 || st.Entries != 0 {
		t.Fatalf("stats %+v", st)
	}
	v, err := c.GetOrLoad(ctx, nil, []byte("k"), func(context.Context, []byte) ([]byte, error) { return []byte("v"), nil })
	if err != nil || string(v) != "v" {
		t.Fatalf("load after a Goexit: %q %v", v, err)
	}
}

// waitGoroutines fails if the goroutine count does not come back to base.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	for range 200 {
		if runtime.NumGoroutine() <= base {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%d goroutines, %d before: a goroutine leaked", runtime.NumGoroutine(), base)
}

// TestSetAtMaxEntriesEvicts fills a cache to Options.MaxEntries with
// bytes to spare: a Set of a new key evicts an entry to make way, as it does
// for bytes, rather than fail with ErrFull while nothing is pinned.
func TestSetAtMaxEntriesEvicts(t *testing.T) {
	const maxEntries = 100
	c := newT(t, 1<<20, &Options{MaxEntries: maxEntries})
	for i := range 3 * maxEntries {
		setT(t, c, key(i), []byte("v"))
		if c.Len() > maxEntries {
			t.Fatalf("%d entries, MaxEntries %d", c.Len(), maxEntries)
		}
	}
	if st := c.Stats(); st.Entries != maxEntries || st.Evictions != 2*maxEntries {
		t.Fatalf("stats %+v", st)
	}
	// With every entry pinned, a new key finds no room: ErrFull.
	var hs []Handle
	for i := range 3 * maxEntries {
		if _, h, err := c.Pin(key(i)); err == nil {
			hs = append(hs, h)
		}
	}
	wantErr(t, c.Set([]byte("new"), []byte("v")), ErrFull)
	for _, h := range hs {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	setT(t, c, []byte("new"), []byte("v"))
}

// TestSetRacingResizeAndClose runs Sets while a Resize rebuilds the store
// and Close follows: a Set whose store the rebuild replaced, finding the
// cache closed when it comes back, stored nothing and must say so. Every
// Set that returned nil must be counted as stored.
func TestSetRacingResizeAndClose(t *testing.T) {
	big := make([]byte, 256<<10)
	trials := 50
	if slow {
		trials = 10
	}
	for trial := range trials {
		c, err := New(8<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		var stored atomic.Int64
		var wg sync.WaitGroup
		for g := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					err := c.Set(key(g<<20+i), big)
					switch {
					case err == nil:
						stored.Add(1)
					case errors.Is(err, ErrClosed):
						return
					}
				}
			}()
		}
		for stored.Load() < 4 {
			runtime.Gosched()
		}
		if err := c.Resize(4 << 20); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		if st := c.Stats(); int64(st.Sets) != stored.Load() {
			t.Fatalf("trial %d: %d Sets returned nil, %d stored", trial, stored.Load(), st.Sets)
		}
	}
}

// TestTwoStepSetNotFullWhenUnpinned races Sets too long to be copied under
// the lock (they reserve without it) against Deletes that empty the cache,
// on a pool of its own where nothing is pinned: no Set may fail with
// ErrFull. A reservation that found the pool full and then, under the
// lock, nothing left to evict used to fail although the Deletes had
// emptied the pool meanwhile ("no room: the rest is pinned", with nothing
// pinned).
func TestTwoStepSetNotFullWhenUnpinned(t *testing.T) {
	c, err := New(16<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const keys = 16
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			value := make([]byte, (2+g)<<10)
			for i := 0; !stop.Load(); i++ {
				if err := c.Set(key(i%keys), value); err != nil && !errors.Is(err, ErrRejected) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if _, err := c.Delete(key(i % keys)); err != nil {
				errs <- err
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestSharedPoolReclaim puts a cache on a pool shared with another user:
// the user's commits make the cache evict, never its pinned entries.
func TestSharedPoolReclaim(t *testing.T) {
	p, err := pool.New(64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := newT(t, 64<<10, &Options{Pool: p})
	for i := range 500 {
		setT(t, c, key(i), value(i, 0, 100))
	}
	view, h, err := c.Pin(key(499))
	if err != nil {
		t.Fatal(err)
	}
	ev := c.Stats().Evictions
	var refs []pool.Ref
	for range 50 { // 50 KiB of another user's data
		r, err := p.Commit(make([]byte, 1024))
		if err != nil {
			t.Fatalf("commit with a cache to give way: %v", err)
		}
		refs = append(refs, r)
	}
	st := c.Stats()
	if st.Evictions <= ev || st.BytesUsed > 14<<10 || !bytes.Equal(view, value(499, 0, 100)) || !c.Has(key(499)) {
		t.Fatalf("after another user's commits: %+v", st)
	}
	// With the cache down to its pinned entry, a commit that needs more fails.
	for {
		if _, err := p.Commit(make([]byte, 1024)); err != nil {
			wantErr(t, err, pool.ErrFull)
			break
		}
	}
	if c.Len() != 1 || !bytes.Equal(view, value(499, 0, 100)) {
		t.Fatalf("pinned entry reclaimed: %d entries", c.Len())
	}
	_ = h.Release()
	for _, r := range refs {
		_ = p.Release(r)
	}
}

// TestSharedPoolSelfReclaim has the cache's own Set find the shared pool
// full: the pool asks the same cache for room while the Set is in flight,
// which must not deadlock, and the Set succeeds.
func TestSharedPoolSelfReclaim(t *testing.T) {
	p, err := pool.New(16<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := newT(t, 1<<20, &Options{Pool: p}) // a budget far above what the pool holds
	done := make(chan error)
	go func() {
		for i := range 2000 {
			if err := c.Set(key(i), value(i, 0, 200)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Set on a full shared pool deadlocked")
	}
	if st := c.Stats(); st.Evictions == 0 || st.BytesUsed > 16<<10 {
		t.Fatalf("stats %+v", st)
	}
}

// TestResizeGivesMemoryBack fills a cache, shrinks it to a tenth, and checks
// that the process's RSS falls by most of what was freed, at once.
func TestResizeGivesMemoryBack(t *testing.T) {
	budget := 64 << 20
	if slow {
		budget = 4 << 20
	}
	c := newT(t, budget, nil)
	for i := 0; c.Stats().BytesUsed < budget-8192; i++ {
		setT(t, c, key(i), value(i, 0, 4000))
	}
	_, h, err := c.Pin(key(3)) // an early entry, pinned: it stays where it is
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	peak, err := vmem.RSS()
	if err != nil {
		t.Skip(err)
	}
	if err := c.Resize(budget / 10); err != nil {
		t.Fatal(err)
	}
	after, _ := vmem.RSS()
	st := c.Stats()
	if st.BytesUsed > budget/10 || st.Compactions != 1 || st.Rebuilds != 0 { // a pin is out: compaction in place
		t.Fatalf("stats %+v", st)
	}
	if freed := peak - after; freed < budget*8/10 && !slow {
		t.Fatalf("RSS %d MiB before Resize to a tenth, %d MiB after: only %d MiB given back", peak>>20, after>>20, freed>>20)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	// The cache works on after shrinking, and grows again.
	for i := range 100 {
		setT(t, c, key(1e6+i), value(1e6+i, 0, 4000))
	}
	if err := c.Resize(budget); err != nil {
		t.Fatal(err)
	}
	ev := c.Stats().Evictions
	for i := 0; c.Stats().BytesUsed < budget*9/10; i++ {
		setT(t, c, key(2e6+i), value(2e6+i, 0, 4000))
	}
	if st := c.Stats(); st.Evictions != ev {
		t.Fatalf("evicted on the way back up to the budget: %+v", st)
	}
}

// TestResizeRebuildGivesMetadataBack fills a cache with small entries,
// whose index, entry tables and pool slots weigh as much as their bytes,
// and checks that a Resize to a tenth with no pins out (a rebuild) gives
// back all of it but a tenth, at once, and keeps every survivor intact.
func TestResizeRebuildGivesMetadataBack(t *testing.T) {
	if proc.Race {
		t.Skip("measures RSS; TestRebuildRacingReadersAndWriters covers the rebuild's races")
	}
	budget := 64 << 20
	if slow {
		budget = 4 << 20
	}
	runtime.GC()
	base, err := vmem.RSS()
	if err != nil {
		t.Skip(err)
	}
	c := newT(t, budget, nil)
	n := 0
	for ; c.Stats().BytesUsed < budget-200; n++ {
		setT(t, c, key(n), value(n, 0, 100))
	}
	peak, _ := vmem.RSS()
	if err := c.Resize(budget / 10); err != nil {
		t.Fatal(err)
	}
	after, _ := vmem.RSS()
	st := c.Stats()
	if st.Rebuilds != 1 || st.Compactions != 0 || st.BytesUsed > budget/10 {
		t.Fatalf("stats %+v", st)
	}
	if pct := 100 * float64(after-base) / float64(peak-base); pct > 20 && !slow { // at small budgets fixed costs weigh
		t.Fatalf("RSS grew %d MiB filling %d entries and is still %d MiB over the start after Resize to a tenth: %.0f%%",
			(peak-base)>>20, n, (after-base)>>20, pct)
	}
	held := 0
	for i := range n {
		if v, ok := c.Get(nil, key(i)); ok {
			held++
			if !bytes.Equal(v, value(i, 0, 100)) {
				t.Fatalf("key %d changed across the rebuild", i)
			}
		}
	}
	if held != st.Entries || held == 0 {
		t.Fatalf("%d keys readable, %d entries", held, st.Entries)
	}
	for i := range 1000 { // and it works on
		setT(t, c, key(n+i), value(n+i, 1, 100))
	}
}

// TestRebuildRacingReadersAndWriters resizes a cache up and down, so that
// it rebuilds (or, with a pin out at that moment, compacts), while
// goroutines get, set, pin and delete, and checks every value read.
func TestRebuildRacingReadersAndWriters(t *testing.T) {
	c := newT(t, 1<<20, &Options{MaxBudget: 2 << 20})
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for n := 0; !stop.Load(); n++ {
				i := (n*31 + g*7) % 3000
				switch n % 8 {
				case 0, 1:
					if err := c.Set(key(i), value(i, n, 40+n%300)); err != nil && !errors.Is(err, ErrFull) {
						errs <- err
						return
					}
				case 2:
					_, _ = c.Delete(key(i))
				case 3:
					if v, h, err := c.Pin(key(i)); err == nil {
						if !valid(v, i) {
							errs <- fmt.Errorf("pinned key %d holds a bad value", i)
							return
						}
						_ = h.Release()
					}
				default:
					var ok bool
					if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
						errs <- fmt.Errorf("key %d read a bad value", i)
						return
					}
				}
			}
		}()
	}
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		if err := c.Resize((256 + 512*(i%3)) << 10); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Rebuilds == 0 || st.BytesUsed > st.Budget || st.Handles != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBytesPinnedAfterPinsRacingResizes pins and releases two keys from
// four goroutines while Resizes compact and rebuild, which undoes pins
// taken meanwhile: once every handle is back, no bytes may be counted as
// pinned. An undone pin left behind the count of the entry's first pin, or
// of its last, when another pinner made the other.
func TestBytesPinnedAfterPinsRacingResizes(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // more interleavings than the cores give
	c := newT(t, 1<<16, &Options{MaxBudget: 1 << 17})
	for i := range 2 {
		setT(t, c, key(i), value(i, 0, 100))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, h, err := c.Pin(key(g % 2)); err == nil {
					_ = h.Release()
				}
			}
		}()
	}
	for deadline, i := time.Now().Add(time.Second), 0; time.Now().Before(deadline); i++ {
		_ = c.Resize(1<<16 + i%2<<16)
	}
	stop.Store(true)
	wg.Wait()
	if st := c.Stats(); st.BytesPinned != 0 || st.Handles != 0 {
		t.Fatalf("no handles out, but %d bytes pinned and %d handles counted", st.BytesPinned, st.Handles)
	}
}

func TestResizeWithPinsAbove(t *testing.T) {
	c := newT(t, 8192, nil)
	for i := range 16 {
		setT(t, c, key(i), value(i, 0, 480))
	}
	var hs []Handle
	for i := range 16 {
		if _, h, err := c.Pin(key(i)); err == nil {
			hs = append(hs, h)
		}
	}
	before := c.Stats()
	wantErr(t, c.Resize(1024), ErrFull)
	if st := c.Stats(); st.Budget != before.Budget || st.Entries != before.Entries {
		t.Fatalf("a failed Resize changed the cache: %+v, was %+v", st, before)
	}
	for _, h := range hs {
		_ = h.Release()
	}
	if err := c.Resize(1024); err != nil {
		t.Fatal(err)
	}
}

func TestAllocs(t *testing.T) {
	if check.On {
		t.Skip("the checked build allocates in its checks")
	}
	c := newT(t, 256<<10, nil)
	keys := make([][]byte, 8192)
	for i := range keys {
		keys[i] = key(i)
		setT(t, c, keys[i], value(i, 0, 100))
	}
	if c.Stats().Evictions == 0 {
		t.Fatal("the cache is not at capacity")
	}
	// The last key set is surely held: an admission policy may have turned
	// older ones away already.
	k, v, buf := keys[len(keys)-1], value(8000, 1, 100), make([]byte, 0, 256)
	miss := []byte("absent")
	setT(t, c, k, v) // the policy may have evicted it: the hits below must hit
	if _, ok := c.Get(nil, k); !ok {
		t.Fatal("the key just set is not held")
	}
	var i int
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"Get", func() { buf, _ = c.Get(buf[:0], k) }},
		{"Get miss", func() { buf, _ = c.Get(buf[:0], miss) }},
		{"Has", func() { c.Has(k) }},
		{"Pin and Release", func() {
			if _, h, err := c.Pin(k); err == nil {
				_ = h.Release()
			} else {
				t.Fatal(err)
			}
		}},
		{"Pin miss", func() { _, _, _ = c.Pin(miss) }},
		{"Set replacing", func() { _ = c.Set(k, v) }},
		{"Set evicting", func() { i++; _ = c.Set(keys[i%len(keys)], v) }},
		{"Delete", func() { _, _ = c.Delete(k); _ = c.Set(k, v) }},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocs/op", tc.name, n)
		}
	}
}

func TestGetAppendsToDst(t *testing.T) {
	c := newT(t, 1<<20, nil)
	setT(t, c, []byte("k"), []byte("value"))
	dst := []byte("prefix-")
	got, ok := c.Get(dst, []byte("k"))
	if !ok || string(got) != "prefix-value" {
		t.Fatalf("%q %v", got, ok)
	}
	if got, ok := c.Get(dst, []byte("missing")); ok || string(got) != "prefix-" {
		t.Fatalf("miss: %q %v", got, ok)
	}
	setT(t, c, []byte("empty"), nil)
	if got, ok := c.Get(nil, []byte("empty")); !ok || len(got) != 0 {
		t.Fatalf("empty value: %q %v", got, ok)
	}
}

func TestCloseRacingReaders(t *testing.T) {
	for range 20 {
		c, err := New(1<<16, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			_ = c.Set(key(i), value(i, 0, 50))
		}
		var wg sync.WaitGroup
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for n := range 3000 {
					i := (n + g) % 100
					buf, _ = c.Get(buf[:0], key(i))
					if _, h, err := c.Pin(key(i)); err == nil {
						_ = h.Release()
					}
					_ = c.Set(key(i), value(i, n, 50))
				}
			}()
		}
		err = c.Close()
		for errors.Is(err, ErrBusy) { // while a pin is out
			runtime.Gosched()
			err = c.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

// TestMetaBytesBoundsRSS fills a cache of a million small entries, whose
// metadata weighs more than their bytes, and checks that what it reports
// (BytesUsed, MetaBytes) accounts for all the RSS it grew: MetaBytes counts
// the policy's memory and not the index pages a rehash gave back.
func TestMetaBytesBoundsRSS(t *testing.T) {
	if proc.Race || slow {
		t.Skip("measures RSS of a million entries")
	}
	const n = 1 << 20
	runtime.GC()
	rss0, err := vmem.RSS()
	if err != nil {
		t.Skip(err)
	}
	c := newT(t, n*128, nil)
	k, v := make([]byte, 16), make([]byte, 100)
	for i := range n {
		binary.LittleEndian.PutUint64(k, uint64(i))
		setT(t, c, k, v)
	}
	runtime.GC()
	rss1, _ := vmem.RSS()
	st := c.Stats()
	grown := int(rss1 - rss0)
	if slack := st.MetaBytes/20 + 4<<20; grown > st.BytesUsed+st.MetaBytes+slack {
		t.Fatalf("RSS grew %d MiB for %d entries, but BytesUsed is %d MiB and MetaBytes %d MiB", grown>>20, st.Entries, st.BytesUsed>>20, st.MetaBytes>>20)
	}
}

// TestCloseWakesLoadWaiters: Close returns the waiters of a load whose
// loader ignores its context at once, with ErrClosed, instead of leaving
// them until the loader returns.
func TestCloseWakesLoadWaiters(t *testing.T) {
	c, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	loaderDone := make(chan struct{})
	load := func(context.Context, []byte) ([]byte, error) {
		defer close(loaderDone)
		close(started)
		<-release // ignores its context
		return []byte("late"), nil
	}
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.GetOrLoad(context.Background(), nil, []byte("k"), load)
			errs <- err
		}()
	}
	<-started
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case err := <-errs:
			wantErr(t, err, ErrClosed)
		case <-time.After(10 * time.Second):
			t.Fatal("a GetOrLoad still waits for a loader that ignores its context after Close")
		}
	}
	close(release)
	<-loaderDone
}

// stopAfter lets the workers run for dur, stops them and reports the
// errors they sent.
func stopAfter(t *testing.T, dur time.Duration, stop *atomic.Bool, wg *sync.WaitGroup, errs chan error) {
	t.Helper()
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// verifyT checks the cache's invariants (see verify) under its lock.
func verifyT(t *testing.T, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.verify(); err != nil {
		t.Error(err)
	}
}

// TestSetRacingSetOfSameKey runs a Set in steps, so that another Set of the
// same key completes between its making room (which found the key absent)
// and its insert: the insert must see that Set's entry and replace it, not
// add the key twice. (The insert skips looking the key up again when no
// key was added since makeRoom; here one was.)
func TestSetRacingSetOfSameKey(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k, v := []byte("key"), []byte("second")
	h, weight := c.hash(k), c.weight(uint64(len(k)+len(v)))
	st, ab, err, _ := c.beginSet(k, v, h, weight, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(k, []byte("first")); err != nil {
		t.Fatal(err)
	}
	err, again := c.setIn(st, k, v, h, weight, nil, ab)
	c.sets.Done()
	if err != nil || again {
		t.Fatalf("setIn: %v, again %v", err, again)
	}
	if got, ok := c.Get(nil, k); !ok || string(got) != "second" || c.Len() != 1 {
		t.Fatalf("Get = %q, %v; Len %d; want the second value, once", got, ok, c.Len())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.verify(); err != nil {
		t.Fatal(err)
	}
}
