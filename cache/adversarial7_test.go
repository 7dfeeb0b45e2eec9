// Adversarial tests, pass 7: an entry's own handle (a6eee85) and its
// interplay with handle slots, the pin limit, Delete, eviction, Resize,
// Close and a shared pool.

package cache

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
	"github.com/offheap/offheap/pool"
)

// entryOf7 returns key's entry id and word in the current store.
func entryOf7(t *testing.T, c *Cache, k []byte) (uint32, uint64) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	st := c.cur()
	id, _, _, _, f := st.find(c.hash(k), k)
	if f != foundYes {
		t.Fatalf("key %q not found", k)
	}
	return id, st.entry(id).loadWord()
}

// wordAt7 returns entry id's word in the current store.
func wordAt7(c *Cache, id uint32) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur().entry(id).loadWord()
}

// park7 parks every pinned entry of c, as an eviction that finds them
// pinned does, and reports whether the policy found an unpinned victim.
func park7(c *Cache) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.cur().pol.victim(c.isPinned)
	return ok
}

// TestOwnAndSlotReleaseOrders7 pins one entry n times at once (the first
// takes the own handle, the rest slots) and releases them in random orders,
// with the entry live, deleted (gone) or parked meanwhile. After each
// release the word holds exactly the pins and own bit still out and Stats
// count them; every released Handle is refused again without touching the
// pins out; re-pinning while slot pins remain takes the own handle afresh
// (a new ticket), which the old own Handle does not release; and the last
// release frees a gone entry and unparks a parked one. Slots are reused,
// not leaked.
func TestOwnAndSlotReleaseOrders7(t *testing.T) {
	withoutHazards(t)
	r := rand.New(rand.NewPCG(7, 1))
	for _, mode := range []string{"live", "deleted", "parked"} {
		c := newT(t, 1<<20, nil)
		k, v := []byte("k"), value(1, 0, 200)
		weight := int(c.weight(uint64(len(k) + len(v))))
		for iter := range 300 {
			setT(t, c, k, v)
			id, _ := entryOf7(t, c, k)
			n := 1 + r.IntN(6)
			hs := make([]Handle, n)
			views := make([][]byte, n)
			for i := range hs {
				view, h, err := c.Pin(k)
				if err != nil {
					t.Fatal(err)
				}
				if (h.own()) != (i == 0) {
					t.Fatalf("%s: pin %d of %d: own %v", mode, i, n, h.own())
				}
				hs[i], views[i] = h, view
			}
			switch mode {
			case "deleted":
				if ok, err := c.Delete(k); !ok || err != nil {
					t.Fatalf("delete: %v %v", ok, err)
				}
			case "parked":
				if park7(c) {
					t.Fatal("the policy found an unpinned victim")
				}
				if wordAt7(c, id)&parkedBit == 0 {
					t.Fatalf("not parked: %#x", wordAt7(c, id))
				}
			}
			ownOut := true
			var released []Handle
			out := n
			for out > 0 {
				i := r.IntN(len(hs))
				h := hs[i]
				hs = append(hs[:i], hs[i+1:]...)
				if err := h.Release(); err != nil {
					t.Fatalf("%s iter %d: release: %v", mode, iter, err)
				}
				out--
				if h.own() {
					ownOut = false
				}
				released = append(released, h)
				if out > 0 && !ownOut && r.IntN(2) == 0 {
					// Re-take the own handle while slot pins remain.
					_, h2, err := c.Pin(k)
					if mode == "deleted" {
						if !errors.Is(err, ErrNotFound) {
							t.Fatalf("pin of a deleted key: %v", err)
						}
					} else {
						if err != nil {
							t.Fatal(err)
						}
						if !h2.own() {
							t.Fatal("a pin with the own handle free took a slot")
						}
						for _, old := range released {
							if old.own() && old.h == h2.h {
								t.Fatalf("the own handle was re-taken with the old tag %#x", h2.h)
							}
						}
						hs = append(hs, h2)
						out++
						ownOut = true
					}
				}
				for _, old := range released {
					if err := old.Release(); !errors.Is(err, ErrReleased) {
						t.Fatalf("%s: a released handle released again: %v", mode, err)
					}
				}
				if out > 0 {
					w := wordAt7(c, id)
					if int(pinsOf(w)) != out || (w&ownBit != 0) != ownOut {
						t.Fatalf("%s iter %d: %d pins out, own %v: word %#x", mode, iter, out, ownOut, w)
					}
					for _, vw := range views {
						if !bytes.Equal(vw, v) {
							t.Fatalf("%s: a pinned view changed", mode)
						}
					}
				}
				st := c.Stats()
				wantPinned := 0
				if out > 0 {
					wantPinned = weight
				}
				if st.Handles != out || st.BytesPinned != wantPinned {
					t.Fatalf("%s iter %d: %d out: stats %d handles, %d bytes pinned", mode, iter, out, st.Handles, st.BytesPinned)
				}
			}
			st := c.Stats()
			if mode == "deleted" && st.BytesUsed != 0 {
				t.Fatalf("deleted and released: %d bytes used", st.BytesUsed)
			}
			if mode != "deleted" {
				if w := wordAt7(c, id); w&(ownBit|parkedBit) != 0 || pinsOf(w) != 0 {
					t.Fatalf("%s: all released: word %#x", mode, w)
				}
			}
			checkQuiet(t, c)
		}
		if n := slotsUsed(c); n > 2*hcacheCap*uint32(runtime.GOMAXPROCS(0))+64 {
			t.Fatalf("%s: %d handle slots used for at most 6 pins out", mode, n)
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPinLimitReal7 takes the 65535 pins an entry holds with real Pins
// (the own handle and 65534 slots): one more is ErrBusy, changing nothing;
// releasing the own handle at the limit lets exactly one Pin through, which
// takes it again; Close is busy while any pin is out and succeeds once all
// are released; Stats count every pin.
func TestPinLimitReal7(t *testing.T) {
	withoutHazards(t) // the word's limit; TestHazardPinLimit has both
	if testing.Short() && slow {
		t.Skip("65535 pins")
	}
	c := newT(t, 1<<20, nil)
	k, v := []byte("k"), value(3, 0, 64)
	setT(t, c, k, v)
	id, _ := entryOf7(t, c, k)
	hs := make([]Handle, 0, maxWordPins)
	for range maxWordPins {
		_, h, err := c.Pin(k)
		if err != nil {
			t.Fatalf("pin %d: %v", len(hs), err)
		}
		hs = append(hs, h)
	}
	w := wordAt7(c, id)
	if _, _, err := c.Pin(k); !errors.Is(err, ErrBusy) {
		t.Fatalf("pin past the limit: %v", err)
	}
	if wordAt7(c, id) != w || pinsOf(w) != maxWordPins || w&ownBit == 0 {
		t.Fatalf("at the limit: word %#x -> %#x", w, wordAt7(c, id))
	}
	if st := c.Stats(); st.Handles != maxWordPins {
		t.Fatalf("%d handles counted, %d out", st.Handles, maxWordPins)
	}
	if !hs[0].own() {
		t.Fatal("the first pin took a slot")
	}
	if err := hs[0].Release(); err != nil {
		t.Fatal(err)
	}
	_, h, err := c.Pin(k)
	if err != nil || !h.own() || h.h == hs[0].h {
		t.Fatalf("pin after the own handle's release at the limit: own %v, err %v", h.own(), err)
	}
	hs[0] = h
	if _, _, err := c.Pin(k); !errors.Is(err, ErrBusy) {
		t.Fatalf("pin past the limit again: %v", err)
	}
	if err := c.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("close with %d pins out: %v", maxWordPins, err)
	}
	r := rand.New(rand.NewPCG(7, 2))
	r.Shuffle(len(hs), func(i, j int) { hs[i], hs[j] = hs[j], hs[i] })
	for i, h := range hs {
		if err := h.Release(); err != nil {
			t.Fatalf("release %d: %v", i, err)
		}
		if i == len(hs)-2 {
			if err := c.Close(); !errors.Is(err, ErrBusy) {
				t.Fatalf("close with one pin out: %v", err)
			}
		}
	}
	checkQuiet(t, c)
	if err := c.Close(); err != nil {
		t.Fatalf("close with no pins out: %v", err)
	}
	if err := hs[0].Release(); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrReleased) {
		t.Fatalf("release after close: %v", err)
	}
}

// TestOwnHandleAcrossCloseAndRebuild7 releases own Handles, stale and
// valid, across Close and across rebuilds of the store (whose memory the
// checked build unmaps at once): nothing faults, a stale one is refused,
// and Close is busy exactly while an own handle is out.
func TestOwnHandleAcrossCloseAndRebuild7(t *testing.T) {
	withoutHazards(t)
	c := newT(t, 1<<20, nil)
	k, v := []byte("k"), value(4, 0, 100)
	setT(t, c, k, v)
	_, h, err := c.Pin(k)
	if err != nil || !h.own() {
		t.Fatalf("pin: own %v, %v", h.own(), err)
	}
	if err := c.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("close with an own handle out: %v", err)
	}
	if err := c.Resize(1 << 19); err != nil { // compacts: a pin is out
		t.Fatal(err)
	}
	if c.Stats().Compactions != 1 {
		t.Fatalf("stats %+v: want one compaction", c.Stats())
	}
	if err := h.Release(); err != nil {
		t.Fatalf("release after a compaction: %v", err)
	}
	stale := h
	for range 3 {
		if err := c.Resize(1 << 18); err != nil { // rebuilds: no pins
			t.Fatal(err)
		}
		if err := c.Resize(1 << 20); err != nil {
			t.Fatal(err)
		}
	}
	if c.Stats().Rebuilds == 0 {
		t.Fatal("no rebuild")
	}
	if err := stale.Release(); !errors.Is(err, ErrReleased) {
		t.Fatalf("stale own handle after rebuilds: %v", err)
	}
	view, h, err := c.Pin(k)
	if err != nil || !h.own() || !bytes.Equal(view, v) {
		t.Fatalf("pin after rebuilds: own %v, %v", h.own(), err)
	}
	if err := c.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("close with an own handle out: %v", err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, x := range []Handle{h, stale} {
		if err := x.Release(); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrReleased) {
			t.Fatalf("release after close: %v", err)
		}
	}
}

// TestOwnDoubleReleaseRacingRepin7 releases an own Handle twice at once
// while a third goroutine pins the entry again (taking the own handle the
// first release gave back): one release succeeds, the other is refused, and
// the new pin is never dropped by the refused one.
func TestOwnDoubleReleaseRacingRepin7(t *testing.T) {
	withoutHazards(t)
	c := newT(t, 1<<20, nil)
	k, v := []byte("k"), value(5, 0, 100)
	setT(t, c, k, v)
	id, _ := entryOf7(t, c, k)
	n := 3000
	if testing.Short() || slow {
		n = 500
	}
	for range n {
		_, h, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		var h2 Handle
		var perr error
		for i := range errs {
			wg.Go(func() { errs[i] = h.Release() })
		}
		wg.Go(func() { _, h2, perr = c.Pin(k) })
		wg.Wait()
		if perr != nil {
			t.Fatal(perr)
		}
		if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), ErrReleased) {
			t.Fatalf("two releases of one own handle: %v and %v", errs[0], errs[1])
		}
		if w := wordAt7(c, id); pinsOf(w) != 1 || (w&ownBit != 0) != (h2.own()) {
			t.Fatalf("one pin out (own %v): word %#x", h2.own(), w)
		}
		if err := h2.Release(); err != nil {
			t.Fatalf("the new pin was dropped by a refused release: %v", err)
		}
	}
	checkQuiet(t, c)
}

// TestOwnPinAllocs7 checks that pins that take the own handle, slots, or
// both, and their releases in either order, allocate nothing.
func TestOwnPinAllocs7(t *testing.T) {
	if check.On {
		t.Skip("the checked build allocates in its checks")
	}
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	setT(t, c, k, value(6, 0, 100))
	for _, tc := range []struct {
		name string
		f    func()
	}{
		{"own", func() {
			_, h, _ := c.Pin(k)
			_ = h.Release()
		}},
		{"own then slot, own released first", func() {
			_, a, _ := c.Pin(k)
			_, b, _ := c.Pin(k)
			_ = a.Release()
			_ = b.Release()
		}},
		{"slot released first", func() {
			_, a, _ := c.Pin(k)
			_, b, _ := c.Pin(k)
			_ = b.Release()
			_ = a.Release()
		}},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocs/op", tc.name, n)
		}
	}
	checkQuiet(t, c)
}

// pinsRacingWriters7 has pinners pin a few hot keys, often the same one at
// once (own handles and slots together), hold them for a while, sometimes
// hand them to a releaser goroutine, and release them in random orders,
// checking that no held view changes and that a release repeated is
// refused; meanwhile writers replace and delete the hot keys and set cold
// ones (evicting), and a resizer shrinks and grows the cache while holding
// a pin (compactions) or not (rebuilds; ErrFull where the pins exceed the
// new budget); on a shared pool another user keeps it near full, so the
// cache is asked to reclaim. Afterwards no pin, own bit or
// parked mark is left, Stats count none, and Close succeeds.
func pinsRacingWriters7(t *testing.T, shared bool) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const budget = 64 << 10
	var p *pool.Pool
	opts := &Options{MaxBudget: 4 * budget}
	if shared {
		var err error
		if p, err = pool.New(2*budget, nil); err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		opts = &Options{Pool: p, MaxBudget: 2 * budget}
	}
	c, err := New(budget, opts)
	if err != nil {
		t.Fatal(err)
	}
	const hot = 4
	var ver [hot]atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	toRelease := make(chan Handle, 64)
	var released atomic.Int64
	wg.Add(1)
	go func() { // the releaser: Handles pinned on other goroutines
		defer wg.Done()
		for h := range toRelease {
			if err := h.Release(); err != nil {
				errs <- fmt.Errorf("release on another goroutine: %w", err)
			}
			released.Add(1)
		}
	}()
	var pinners sync.WaitGroup
	for g := range 3 {
		pinners.Add(1)
		go func() {
			defer pinners.Done()
			r := rand.New(rand.NewPCG(7, uint64(g)))
			type held struct {
				h    Handle
				view []byte
				snap []byte
				i    int
			}
			var hs []held
			for !stop.Load() {
				i := r.IntN(hot)
				if r.IntN(3) == 0 {
					i = 0 // most pins on one key: own and slots at once
				}
				view, h, err := c.Pin(key(i))
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					errs <- fmt.Errorf("pin: %w", err)
					return
				case !valid(view, i):
					errs <- fmt.Errorf("pin of key %d: foreign value", i)
					_ = h.Release()
					return
				default:
					hs = append(hs, held{h, view, bytes.Clone(view), i})
				}
				if len(hs) > 0 && (len(hs) > 4 || r.IntN(2) == 0) {
					j := r.IntN(len(hs))
					x := hs[j]
					hs = append(hs[:j], hs[j+1:]...)
					if !bytes.Equal(x.view, x.snap) {
						errs <- fmt.Errorf("the pinned view of key %d changed (own %v)", x.i, x.h.own())
						return
					}
					if r.IntN(4) == 0 {
						toRelease <- x.h
						continue
					}
					if err := x.h.Release(); err != nil {
						errs <- fmt.Errorf("release (own %v): %w", x.h.own(), err)
						return
					}
					released.Add(1)
					if r.IntN(8) == 0 {
						if err := x.h.Release(); !errors.Is(err, ErrReleased) {
							errs <- fmt.Errorf("second release (own %v): %v", x.h.own(), err)
							return
						}
					}
				}
				if r.IntN(16) == 0 {
					time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
				}
			}
			for _, x := range hs {
				if !bytes.Equal(x.view, x.snap) {
					errs <- fmt.Errorf("the pinned view of key %d changed", x.i)
				}
				if err := x.h.Release(); err != nil {
					errs <- fmt.Errorf("final release: %w", err)
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // the writer
		defer wg.Done()
		r := rand.New(rand.NewPCG(7, 100))
		for n := 0; !stop.Load(); n++ {
			i := r.IntN(hot)
			switch r.IntN(4) {
			case 0:
				if _, err := c.Delete(key(i)); err != nil {
					errs <- err
					return
				}
			case 1, 2:
				err := c.Set(key(i), value(i, int(ver[i].Add(1)), 100+r.IntN(3000)))
				if err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) {
					errs <- err
					return
				}
			default:
				j := hot + r.IntN(1000)
				err := c.Set(key(j), value(j, 0, 200+r.IntN(2000)))
				if err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) {
					errs <- err
					return
				}
			}
		}
	}()
	sizes := []int{budget / 8, budget / 2, budget, 2 * budget}
	if !shared {
		sizes = append(sizes, 4*budget)
	} else {
		wg.Add(1)
		go func() { // another user of the pool: the cache's Sets ask it to reclaim
			defer wg.Done()
			if err := hog(p, 2*budget, &stop); err != nil {
				errs <- err
			}
		}()
	}
	wg.Add(1)
	go func() { // the resizer: with a pin out it compacts, else it rebuilds
		defer wg.Done()
		r := rand.New(rand.NewPCG(7, 200))
		for n := 0; !stop.Load(); n++ {
			var hd Handle
			pinned := false
			if n%2 == 0 {
				if _, h, err := c.Pin(key(r.IntN(hot))); err == nil {
					hd, pinned = h, true
				}
			}
			if err := c.Resize(sizes[r.IntN(len(sizes))]); err != nil && !errors.Is(err, ErrFull) {
				errs <- fmt.Errorf("resize: %w", err)
			}
			if pinned {
				if err := hd.Release(); err != nil {
					errs <- fmt.Errorf("release after resize: %w", err)
				}
			}
			time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
		}
	}()
	within(t, "pins racing writers", func() {
		time.Sleep(soak(2*time.Second, 300*time.Millisecond))
		stop.Store(true)
		pinners.Wait()
		close(toRelease)
		wg.Wait()
	})
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkQuiet(t, c)
	if released.Load() == 0 {
		t.Error("nothing was pinned")
	}
	st := c.Stats()
	t.Logf("%d pins released; stats %+v", released.Load(), st)
	if !shared && st.Compactions == 0 && st.Rebuilds == 0 {
		t.Errorf("no compaction or rebuild: %+v", st)
	}
	if err := c.Close(); err != nil {
		t.Errorf("close with no pins out: %v", err)
	}
}

func TestPinsRacingWritersOwned7(t *testing.T)  { pinsRacingWriters7(t, false) }
func TestPinsRacingWritersShared7(t *testing.T) { pinsRacingWriters7(t, true) }

// TestPinUnderReadLockNeverTakesWriteLock7 steps pinLocked by hand: under
// the read lock (as pinLocked holds it) it pins an entry with the word its
// probe read, which showed the own handle free and a slot pin on the parked
// entry; meanwhile the slot pin went and another pinner took the own
// handle, and that pinner releases it at a random moment while this pin is
// under way. With no free slot in this P's cache, pin's fast path used to
// take the pin, see the own handle taken and drop the pin again, and if the
// own handle's Release came in between, that drop was the parked entry's
// last pin, which takes the write lock: under the read lock, a deadlock.
func TestPinUnderReadLockNeverTakesWriteLock7(t *testing.T) {
	withoutHazards(t)
	if !perP {
		t.Skip("pin's fast path with per-P slots is the normal build's")
	}
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	setT(t, c, k, value(8, 0, 100))
	id, _ := entryOf7(t, c, k)
	h := c.hash(k)
	var progress atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := rand.New(rand.NewPCG(7, 8))
		deadline := time.Now().Add(soak(3*time.Second, time.Second))
		for time.Now().Before(deadline) {
			// A slot pin on the parked entry, the own handle free.
			_, o, err := c.Pin(k)
			if err != nil {
				t.Error(err)
				return
			}
			_, s, err := c.Pin(k)
			if err != nil || s.own() {
				t.Errorf("second pin: own %v, %v", s.own(), err)
				return
			}
			if err := o.Release(); err != nil {
				t.Error(err)
				return
			}
			park7(c)
			c.mu.RLock()
			st, m := c.cur(), c.loadMoves()
			e := st.entry(id)
			w, lens := e.loadWord(), e.loadLens()
			_, b, err := c.Pin(k) // takes the own handle
			if err != nil || !b.own() {
				c.mu.RUnlock()
				t.Errorf("pin with the own handle free: own %v, %v", b.own(), err)
				return
			}
			if err := s.Release(); err != nil {
				c.mu.RUnlock()
				t.Error(err)
				return
			}
			var start atomic.Bool
			released := make(chan error, 1)
			spin := r.IntN(400)
			go func() {
				for !start.Load() {
				}
				for range spin {
					if progress.Load() < 0 {
						break
					}
				}
				released <- b.Release()
			}()
			pid := runtime_procPin7()
			ps := c.pstate(pid)
			var stash []uint32
			if ps != nil {
				stash = append(stash, ps.free[:ps.n]...)
				ps.n = 0
			}
			runtime_procUnpin7()
			c.pushHandles(stash)
			start.Store(true)
			a, err := c.pin(st, id, w, h, lens, m)
			c.mu.RUnlock()
			if err := <-released; err != nil {
				t.Errorf("release of the own handle: %v", err)
				return
			}
			if err == nil {
				if err := a.Release(); err != nil {
					t.Errorf("release: %v", err)
					return
				}
			}
			progress.Add(1)
		}
	}()
	last := int64(-1)
	for {
		select {
		case <-done:
			checkQuiet(t, c)
			return
		case <-time.After(2 * time.Second):
		}
		if n := progress.Load(); n == last {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "--- FAIL: %s: no progress in 2s after %d rounds: a pin under the read lock waits for the write lock\n%s", t.Name(), n, buf)
			os.Exit(2)
		} else {
			last = n
		}
	}
}

func runtime_procPin7() int { return proc.Pin() }
func runtime_procUnpin7()   { proc.Unpin() }

// TestCloseRacingOwnPins7 closes caches while pinners pin a few keys (alone,
// so through the own handle, or together, through slots too), read the
// views and release them, until Pin says the cache is closed: Close must be
// busy while any Pin's Handle is out, so every view stays good and every
// Release of a successful Pin succeeds; and once Close succeeded, Pin is
// ErrClosed (the pinners stop there) and a shared pool holds nothing.
func TestCloseRacingOwnPins7(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	rounds := 60
	if testing.Short() || slow {
		rounds = 15
	}
	busy := 0
	within(t, "close racing own pins", func() {
		for round := range rounds {
			var p *pool.Pool
			opts := (*Options)(nil)
			if round%2 == 1 {
				var err error
				if p, err = pool.New(1<<20, nil); err != nil {
					t.Fatal(err)
				}
				opts = &Options{Pool: p}
			}
			c, err := New(64<<10, opts)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				setT(t, c, key(i), value(i, round, 300))
			}
			var wg sync.WaitGroup
			var pins atomic.Int64
			errs := make(chan error, 8)
			for g := range 3 {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(7, uint64(round*8+g)))
					for {
						i := r.IntN(3)
						view, h, err := c.Pin(key(i))
						if err != nil {
							if !errors.Is(err, ErrClosed) {
								errs <- fmt.Errorf("pin: %w", err)
							}
							return
						}
						pins.Add(1)
						for range r.IntN(20) {
							runtime.Gosched()
						}
						if !bytes.Equal(view, value(i, round, 300)) {
							errs <- fmt.Errorf("the view of key %d changed while pinned (own %v)", i, h.own())
						}
						if err := h.Release(); err != nil {
							errs <- fmt.Errorf("release of a pin (own %v): %w", h.own(), err)
							return
						}
						if r.IntN(4) == 0 { // a gap for Close
							time.Sleep(time.Duration(r.IntN(30)) * time.Microsecond)
						}
					}
				})
			}
			for pins.Load() < 100 {
				runtime.Gosched()
			}
			for {
				err := c.Close()
				if err == nil {
					break
				}
				if !errors.Is(err, ErrBusy) {
					t.Fatalf("close: %v", err)
				}
				busy++
				runtime.Gosched()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if p != nil {
				if st := p.Stats(); st.Used != 0 {
					t.Errorf("shared pool: %d bytes used after Close", st.Used)
				}
				p.Close()
			}
		}
	})
	if busy == 0 {
		t.Error("no Close found a pin out: the race was not run")
	}
}

// TestReleasedOwnHandleKeepsNoStore7 keeps released own Handles (as a
// program keeps the last Handle in a struct) across rebuilds: the stores
// the rebuilds retired must still become unreachable, so that their tables'
// mappings go (and, under the race detector, their policies' memory). An
// own Handle that pointed at its store kept each retired store, a dozen
// mappings, alive as long as the program kept the Handle.
func TestReleasedOwnHandleKeepsNoStore7(t *testing.T) {
	withoutHazards(t)
	var freed atomic.Int32
	c := newT(t, 64<<10, &Options{MaxBudget: 128 << 10})
	k := []byte("k")
	setT(t, c, k, value(9, 0, 100))
	const rebuilds = 4
	var kept []Handle
	for range rebuilds {
		_, h, err := c.Pin(k)
		if err != nil || !h.own() {
			t.Fatalf("pin: own %v, %v", h.own(), err)
		}
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		kept = append(kept, h)
		runtime.AddCleanup(c.cur(), func(n *atomic.Int32) { n.Add(1) }, &freed)
		if err := c.Resize(32 << 10); err != nil { // rebuilds
			t.Fatal(err)
		}
		if err := c.Resize(64 << 10); err != nil { // grows
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.Rebuilds != rebuilds {
		t.Fatalf("%d rebuilds, want %d", st.Rebuilds, rebuilds)
	}
	for i := 0; i < 200 && freed.Load() < rebuilds; i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := freed.Load(); n < rebuilds {
		t.Errorf("%d of %d retired stores collected after 200 GCs, with released Handles kept", n, rebuilds)
	}
	for _, h := range kept {
		if err := h.Release(); !errors.Is(err, ErrReleased) {
			t.Errorf("a kept released Handle released again: %v", err)
		}
	}
}
