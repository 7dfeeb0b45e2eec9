// Adversarial pass 11: hazard pins (Pin's fast path, hazard.go) against
// writers, Close, Stats, GOMAXPROCS changes and Releases on other
// goroutines. Each test names, in its comment, a mutation of the code it
// guards under which it fails.

package cache

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
)

// skipChecked11 skips a test that needs hazard pins: the checked build
// pins under the lock, without them.
func skipChecked11(t *testing.T) {
	t.Helper()
	if check.On {
		t.Skip("the checked build takes no hazard pins")
	}
}

// quiet11 checks a cache with no Handle out: no hazard slot in use, no pin
// in any entry's word, Stats counting no handle and no pinned byte, and
// the invariants.
func quiet11(t *testing.T, c *Cache) {
	t.Helper()
	if n, p := hazardSlots(c); n != 0 {
		t.Errorf("%d hazard slots in use (%d promoted) with no Handle out", n, p)
	}
	c.mu.Lock()
	st, pinned := c.cur(), 0
	for id := range st.nextID {
		if pinsOf(st.entry(id).loadWord()) != 0 {
			pinned++
		}
	}
	c.mu.Unlock()
	if pinned != 0 {
		t.Errorf("%d entries still pinned with no Handle out", pinned)
	}
	if s := c.Stats(); s.Handles != 0 || s.BytesPinned != 0 {
		t.Errorf("quiet, but Stats counts %d handles, %d bytes pinned", s.Handles, s.BytesPinned)
	}
	verifyT(t, c)
}

// dur11 is how long the racing tests run.
func dur11() time.Duration {
	if slow || testing.Short() {
		return 150 * time.Millisecond
	}
	return 400 * time.Millisecond
}

// TestHazardReleaseTicket11: a hazard Handle released once must not
// release a later pin that reuses its slot, before or after that pin is
// promoted, nor after the later pin's release; the slot's ticket tells
// them apart. Fails if pinHazard does not advance the ticket (v keeps
// old's ticket: old>>hazTicketShift<<hazTicketShift): the stale Release
// then frees the live hazard.
func TestHazardReleaseTicket11(t *testing.T) {
	skipChecked11(t)
	c := newT(t, 1<<20, nil)
	k, v := []byte("ticket"), value(1, 1, 100)
	setT(t, c, k, v)
	var stale []Handle
	for range 3 * hazSlots {
		_, h := pinHazardT(t, c, k)
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, h)
	}
	// One live pin per P line slot: each reuses a slot a stale Handle named.
	var live []Handle
	for range hazSlots {
		_, h, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		live = append(live, h)
	}
	for round := range 2 {
		for _, h := range stale {
			if err := h.Release(); !errors.Is(err, ErrReleased) {
				t.Fatalf("round %d: stale hazard Release: %v, want ErrReleased", round, err)
			}
		}
		if s := c.Stats(); s.Handles != len(live) { // Stats promoted the live hazards: round 1 tries promoted ones
			t.Fatalf("round %d: %d handles counted, %d out", round, s.Handles, len(live))
		}
	}
	id, _ := entryOf7(t, c, k)
	if pinsOf(wordAt7(c, id)) != uint64(len(live)) {
		t.Fatalf("word has %d pins, %d out", pinsOf(wordAt7(c, id)), len(live))
	}
	for _, h := range live {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range append(stale, live...) {
		if err := h.Release(); !errors.Is(err, ErrReleased) {
			t.Fatalf("release after all were released: %v", err)
		}
	}
	quiet11(t, c)
}

// TestHazardHandlesOnOtherGoroutines11: pins taken on many goroutines (more
// than a P's line holds, so some are word pins) are released on others,
// while a writer deletes, replaces, rewrites in place and evicts the pinned
// keys: every view keeps its bytes until its Release, every Release
// succeeds once and only once, and at the end nothing stays pinned.
// Fails (a pinned view changes) if detach's guard is dropped, if rewrite's
// guard is dropped, or if evictOne's guard is dropped (pinnedForPolicy's
// promote alone leaves a window before the free).
func TestHazardHandlesOnOtherGoroutines11(t *testing.T) {
	const budget = 24 << 10
	c := newT(t, budget, &Options{MaxBudget: 4 * budget})
	keys := keys6(12)
	for i, k := range keys {
		setT(t, c, k, value(i, 0, 100))
	}
	type held struct {
		v, was []byte
		h      Handle
	}
	hand := make(chan held, 256)
	var stop atomic.Bool
	var wg, rel sync.WaitGroup
	errs := make(chan error, 64)
	report := func(err error) {
		select {
		case errs <- err:
		default:
		}
	}
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; !stop.Load(); i++ {
				v, h, err := c.Pin(keys[i%len(keys)])
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					report(fmt.Errorf("pin: %w", err))
					return
				}
				if !valid(v, i%len(keys)) {
					report(errors.New("pinned a torn or foreign value"))
				}
				hand <- held{v, bytes.Clone(v), h}
			}
		}()
	}
	for range 2 {
		rel.Add(1)
		go func() {
			defer rel.Done()
			var mine []held
			flush := func() {
				for _, x := range mine {
					if !bytes.Equal(x.v, x.was) {
						report(errors.New("a pinned view changed before its Release"))
					}
					if err := x.h.Release(); err != nil {
						report(fmt.Errorf("release: %w", err))
					}
					if err := x.h.Release(); !errors.Is(err, ErrReleased) {
						report(fmt.Errorf("second release: %v", err))
					}
				}
				mine = mine[:0]
			}
			for x := range hand {
				if mine = append(mine, x); len(mine) == 40 { // hold many at once: word pins too
					flush()
				}
			}
			flush()
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			j := i % len(keys)
			k := keys[j]
			var err error
			switch i % 6 {
			case 0:
				_, err = c.Delete(k)
			case 1, 2:
				err = c.Set(k, value(j, i, 100)) // same length: in place if unpinned
			case 3:
				err = c.Set(k, value(j, i, 60+i%300))
			case 4:
				err = c.Set([]byte(fmt.Sprintf("filler-%d", i%500)), value(i, 7, 700)) // eviction pressure
			case 5:
				if i%30 == 5 {
					err = c.Resize(budget / (1 + i%2))
				}
			}
			if err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) {
				report(err)
				return
			}
		}
	}()
	time.Sleep(dur11())
	stop.Store(true)
	wg.Wait()
	close(hand)
	rel.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	quiet11(t, c)
	if err := c.Close(); err != nil {
		t.Fatalf("close after every release: %v", err)
	}
}

// TestHazardWithdrawAfterPromotion11: pinners race a writer that promotes
// every hazard (Stats) and rewrites the pinned keys in place (guard), so
// that many pinners find their hazard promoted when validation fails and
// withdraw it, dropping the promoted pin. At the end no entry stays
// pinned, the counts are zero, and Close succeeds. Fails if withdraw does
// not drop the promoted pin (hundreds of entries stay pinned, Stats counts
// their bytes, Close is busy).
func TestHazardWithdrawAfterPromotion11(t *testing.T) {
	skipChecked11(t)
	c := newT(t, 1<<20, nil)
	keys := keys6(4)
	for i, k := range keys {
		setT(t, c, k, value(i, 0, 64))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad, pins atomic.Int64
	var first atomic.Value
	report := func(err error) {
		bad.Add(1)
		first.CompareAndSwap(nil, err)
	}
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := p; !stop.Load(); i++ {
				j := i % len(keys)
				v, h, err := c.Pin(keys[j])
				if errors.Is(err, ErrNotFound) {
					continue // a Set that cannot rewrite in place removes the key, then adds it
				}
				if err != nil {
					report(fmt.Errorf("pin: %w", err))
					continue
				}
				pins.Add(1)
				was := bytes.Clone(v)
				runtime.Gosched()
				if !valid(v, j) || !bytes.Equal(v, was) {
					report(errors.New("a pinned view changed"))
				}
				if err := h.Release(); err != nil {
					report(fmt.Errorf("release: %w", err))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			j := i % len(keys)
			if err := c.Set(keys[j], value(j, i, 64)); err != nil {
				report(fmt.Errorf("set: %w", err))
			}
			if i%3 == 0 {
				c.Stats()
			}
		}
	}()
	time.Sleep(dur11())
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d bad pins, views, releases or sets; first: %v", bad.Load(), first.Load())
	}
	if pins.Load() == 0 {
		t.Fatal("no pin succeeded")
	}
	quiet11(t, c)
	if err := c.Close(); err != nil {
		t.Fatalf("close after every release: %v", err)
	}
}

// TestHazardCloseRacingPins11: pinners pin and release in a loop while
// Close is tried until it succeeds. Close must never succeed while a
// Handle a Pin returned is still out: a pinner that sees Close's success
// before its own Release reports it. Fails if markClosed's promoteAll is
// dropped (Close sees no pin in any word and frees the memory under the
// hazard; the view may also fault).
func TestHazardCloseRacingPins11(t *testing.T) {
	rounds := 20
	if slow || testing.Short() {
		rounds = 10
	}
	if check.On {
		rounds = 3 // pins under the lock: Close waits long for a moment without one
	}
	for r := range rounds {
		c, err := New(1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		keys := keys6(8)
		for i, k := range keys {
			setT(t, c, k, value(i, 0, 100))
		}
		var closed atomic.Bool
		var violations, got, hz atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for p := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := p; ; i++ {
					j := i % len(keys)
					v, h, err := c.Pin(keys[j])
					if err != nil {
						if errors.Is(err, ErrClosed) || closed.Load() {
							return
						}
						continue
					}
					got.Add(1)
					if h.hazard() {
						hz.Add(1)
					}
					for range i % 3 {
						runtime.Gosched() // hold it a while
					}
					ok := valid(v, j)
					if closed.Load() {
						violations.Add(1) // Close succeeded while h was out
					}
					if !ok {
						violations.Add(1)
					}
					if err := h.Release(); err != nil && !closed.Load() {
						violations.Add(1)
					}
				}
			}()
		}
		close(start)
		for got.Load() < 500 {
			runtime.Gosched() // let the pinners get going
		}
		for i := 0; ; i++ {
			for range i % 4 {
				runtime.Gosched()
			}
			err := c.Close()
			if err == nil {
				closed.Store(true)
				break
			}
			if !errors.Is(err, ErrBusy) {
				t.Fatalf("round %d: close: %v", r, err)
			}
		}
		wg.Wait()
		if hz.Load() == 0 && !check.On {
			t.Fatalf("round %d: no hazard pin among %d pins", r, got.Load())
		}
		if n := violations.Load(); n != 0 {
			t.Fatalf("round %d: %d pins out (or bad views) when Close succeeded, of %d", r, n, got.Load())
		}
	}
}

// TestHazardLinesAcrossGOMAXPROCS11: hazards taken on many Ps (GOMAXPROCS
// raised), then GOMAXPROCS lowered to 1, then every pinned key deleted,
// replaced, evicted and the cache shrunk: the writers must still find the
// hazards in the lines of Ps that no longer run (used never shrinks), so
// every view keeps its bytes. Stats counts them all. Fails if inUse scans
// fewer lines than were used (mutation: range min(z.used.Load(), 1)).
func TestHazardLinesAcrossGOMAXPROCS11(t *testing.T) {
	skipChecked11(t)
	if !perP {
		t.Skip("without per-P state every hazard is in the shared line")
	}
	const budget = 64 << 10
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	c := newT(t, budget, &Options{MaxBudget: 2 * budget})
	const n = 48
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = key(i)
	}
	for i, k := range keys {
		setT(t, c, k, value(i, 0, 200))
	}
	type held struct {
		v, was []byte
		h      Handle
	}
	hs := make([]held, n)
	var wg sync.WaitGroup
	var ready sync.WaitGroup
	ready.Add(n)
	gate := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-gate // all start together, spread over the Ps
			for range 100 * (i % 7) {
				runtime.Gosched()
			}
			v, h, err := c.Pin(keys[i])
			if err != nil {
				t.Error(err)
				return
			}
			hs[i] = held{v, bytes.Clone(v), h}
		}()
	}
	ready.Wait()
	close(gate)
	wg.Wait()
	if t.Failed() {
		return
	}
	high, hazards := 0, 0
	for _, x := range hs {
		if x.h.hazard() {
			hazards++
			high = max(high, int(x.h.id/hazSlots))
		}
	}
	if high == 0 {
		t.Skipf("every hazard (%d) landed on P 0's line", hazards)
	}
	runtime.GOMAXPROCS(1)
	for i, k := range keys {
		var err error
		switch i % 3 {
		case 0:
			_, err = c.Delete(k)
		case 1:
			err = c.Set(k, value(i, 1, 200)) // same length
		case 2:
			err = c.Set(k, value(i, 1, 300))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 200 { // evict what is not pinned
		if err := c.Set([]byte(fmt.Sprintf("fill-%d", i)), value(i, 2, 900)); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
	}
	if err := c.Resize(budget / 2); err != nil && !errors.Is(err, ErrFull) {
		t.Fatal(err)
	}
	for i, x := range hs {
		if !bytes.Equal(x.v, x.was) || !valid(x.v, i) {
			t.Fatalf("key %d (hazard %v, line %d of %d used): the pinned view changed", i, x.h.hazard(), x.h.id/hazSlots, high)
		}
	}
	if s := c.Stats(); s.Handles != n {
		t.Fatalf("%d handles counted, %d out", s.Handles, n)
	}
	verifyT(t, c)
	for _, x := range hs {
		if err := x.h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	quiet11(t, c)
}

// TestHazardStatsExact11: with hazard pins on several entries, two on one
// of them, one entry gone (deleted while pinned) and a word pin beside a
// hazard, Stats counts every Handle and each pinned entry's bytes once;
// the same after each Release, down to zero. Fails if Stats does not
// promoteAll (the hazards' bytes are missing), or if promoteAt counts the
// bytes on every promotion instead of when the word's pins leave zero.
func TestHazardStatsExact11(t *testing.T) {
	skipChecked11(t)
	c := newT(t, 1<<20, nil)
	ks := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}
	vs := [][]byte{value(0, 0, 100), value(1, 0, 333), value(2, 0, 1000)}
	for i := range ks {
		setT(t, c, ks[i], vs[i])
	}
	wt := func(i int) int { return int(c.weight(uint64(len(ks[i]) + len(vs[i])))) }
	_, a1 := pinHazardT(t, c, ks[0])
	_, a2 := pinHazardT(t, c, ks[0])
	_, b1 := pinHazardT(t, c, ks[1])
	bv, c1 := pinHazardT(t, c, ks[2])
	withoutHazards(t)
	_, cw, err := c.Pin(ks[2]) // a word pin beside c1's hazard
	if err != nil || cw.hazard() {
		t.Fatalf("word pin: %v, hazard %v", err, cw.hazard())
	}
	hazardsOff = false
	if _, err := c.Delete(ks[1]); err != nil { // b gone, pinned by b1
		t.Fatal(err)
	}
	want := func(handles, bytes int) {
		t.Helper()
		for range 2 { // twice: the second Stats finds the hazards promoted
			if s := c.Stats(); s.Handles != handles || s.BytesPinned != bytes {
				t.Fatalf("Stats: %d handles, %d bytes pinned; want %d, %d", s.Handles, s.BytesPinned, handles, bytes)
			}
		}
	}
	want(5, wt(0)+wt(1)+wt(2))
	rel := func(h Handle) {
		t.Helper()
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	rel(a1)
	want(4, wt(0)+wt(1)+wt(2))
	rel(c1)
	if !bytes.Equal(bv, vs[2]) {
		t.Fatal("c's view changed")
	}
	want(3, wt(0)+wt(1)+wt(2))
	rel(b1) // frees gone b
	want(2, wt(0)+wt(2))
	rel(cw)
	want(1, wt(0))
	// A fresh hazard, unpromoted, beside the promoted a2.
	_, a3 := pinHazardT(t, c, ks[0])
	want(2, wt(0))
	rel(a2)
	rel(a3)
	quiet11(t, c)
}

// TestHazardCompactionKeepsPinned11: with hazard pins out on scattered
// entries (none promoted yet), a Resize that shrinks compacts in place: the
// pinned entries must not move and their views keep their bytes, while
// pinners keep pinning on other goroutines. After the releases, a second
// shrink rebuilds, and nothing stays pinned. Fails if shrink's promoteAll
// is dropped (compaction moves hazard-pinned entries, or a rebuild retires
// their store).
func TestHazardCompactionKeepsPinned11(t *testing.T) {
	skipChecked11(t)
	const budget = 256 << 10
	c := newT(t, budget, &Options{MaxBudget: budget})
	const n = 200
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = key(i)
	}
	for i, k := range keys {
		setT(t, c, k, value(i, 0, 1000))
	}
	type held struct {
		i      int
		v, was []byte
		h      Handle
	}
	var hs []held
	for i := 5; i < n; i += 37 {
		v, h := pinHazardT(t, c, keys[i])
		hs = append(hs, held{i, v, bytes.Clone(v), h})
	}
	// Punch holes so the compaction has something to move.
	for i := range n {
		if i%2 == 0 && (i-5)%37 != 0 {
			if _, err := c.Delete(keys[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; !stop.Load(); i += 2 {
			j := i % n
			v, h, err := c.Pin(keys[j])
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil || !valid(v, j) {
				bad.Add(1)
				continue
			}
			if h.Release() != nil {
				bad.Add(1)
			}
		}
	}()
	for r := range 4 {
		if err := c.Resize(budget/2 - r*(16<<10)); err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		for _, x := range hs {
			if !bytes.Equal(x.v, x.was) || !valid(x.v, x.i) {
				t.Fatalf("round %d: key %d's pinned view changed under a compaction", r, x.i)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad pins racing the compactions", bad.Load())
	}
	c.mu.Lock()
	compactions := c.ops.compactions
	c.mu.Unlock()
	if compactions == 0 {
		t.Fatal("no compaction ran")
	}
	for _, x := range hs {
		if err := x.h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	quiet11(t, c)
	if err := c.Resize(budget / 8); err != nil && !errors.Is(err, ErrFull) {
		t.Fatal(err)
	}
	quiet11(t, c)
}

// TestHazardErrFullAtMaxEntries11: a cache at MaxEntries with every entry
// hazard-pinned must refuse a Set of a new key with ErrFull, evicting none
// of the pinned entries, whose views stay; once released, the Set
// succeeds. Fails if evictOne's guard and pinnedForPolicy's promote are
// both dropped (the Set evicts a hazard-pinned entry and succeeds).
func TestHazardErrFullAtMaxEntries11(t *testing.T) {
	skipChecked11(t)
	c := newT(t, 1<<20, &Options{MaxEntries: hazSlots})
	var hs []Handle
	var views, was [][]byte
	for i := range hazSlots {
		k := []byte{'m', byte(i)}
		setT(t, c, k, value(i, 0, 50))
		v, h := pinHazardT(t, c, k)
		hs, views, was = append(hs, h), append(views, v), append(was, bytes.Clone(v))
	}
	if n, p := hazardSlots(c); n != hazSlots || p != 0 {
		t.Skipf("hazards %d, promoted %d: the goroutine changed Ps", n, p)
	}
	if err := c.Set([]byte("new"), value(99, 0, 50)); !errors.Is(err, ErrFull) {
		t.Fatalf("set at MaxEntries with every entry pinned: %v, want ErrFull", err)
	}
	for i := range views {
		if !bytes.Equal(views[i], was[i]) {
			t.Fatalf("entry %d's pinned view changed", i)
		}
		if _, ok := c.Get(nil, []byte{'m', byte(i)}); !ok {
			t.Fatalf("pinned entry %d was evicted", i)
		}
	}
	for _, h := range hs {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set([]byte("new"), value(99, 0, 50)); err != nil {
		t.Fatalf("set after the releases: %v", err)
	}
	quiet11(t, c)
}

// TestHazardReleaseAfterClose11: Handles released after Close (each once
// released before it) report ErrClosed or ErrReleased and touch nothing;
// a Pin after Close is ErrClosed and takes no slot. Fails if
// releaseHazard returns nil when neither CAS matches.
func TestHazardReleaseAfterClose11(t *testing.T) {
	skipChecked11(t)
	c, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := []byte("k")
	setT(t, c, k, value(0, 0, 10))
	_, h1 := pinHazardT(t, c, k)
	_, h2 := pinHazardT(t, c, k)
	c.Stats() // promote h2's too
	if err := h1.Release(); err != nil {
		t.Fatal(err)
	}
	if err := h2.Release(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, h := range []Handle{h1, h2} {
		if err := h.Release(); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrReleased) {
			t.Fatalf("release after close: %v", err)
		}
	}
	if _, _, err := c.Pin(k); !errors.Is(err, ErrClosed) {
		t.Fatalf("pin after close: %v", err)
	}
	if n, _ := hazardSlots(c); n != 0 {
		t.Fatalf("%d hazard slots in use after close", n)
	}
}
