package cache

// Adversarial tests of the pin count in the entry word (bits 36-63), next
// to the parked and moving bits and the state, and of the CLOCK counters
// (in the policy's own table, raised by lock-free hits with a CAS, lowered
// and cleared by the policy under the lock).

import (
	"bytes"
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

// TestPinLimitLeavesFlagsAlone checks entry.pin at the pin limit with a
// crafted word: the last pin below the limit leaves the state and the flags
// alone, and a pin at the limit is ErrBusy, changing nothing, rather than
// carrying into bits it does not own.
func TestPinLimitLeavesFlagsAlone(t *testing.T) {
	if maxPins != 1<<16-1 || pinShift != 48 {
		t.Fatalf("layout: maxPins %d, pinShift %d", maxPins, pinShift)
	}
	for _, flags := range []uint64{0, parkedBit, movingBit, parkedBit | movingBit} {
		base := uint64(12345) | liveBits | flags
		e := &entry{word: base | (maxWordPins-1)<<pinShift}
		old, err := e.pin(e.loadWord(), true)
		if err != nil {
			t.Fatalf("flags %#x: pin below the limit: %v", flags, err)
		}
		if old != base|(maxWordPins-1)<<pinShift {
			t.Fatalf("pin returned old word %#x", old)
		}
		w := e.loadWord()
		if pinsOf(w) != maxWordPins || w&^(maxWordPins<<pinShift) != base|ownBit { // the crafted word had the own handle in
			t.Fatalf("flags %#x: after the last pin: word %#x, pins %d", flags, w, pinsOf(w))
		}
		if _, err := e.pin(w, true); !errors.Is(err, ErrBusy) {
			t.Fatalf("flags %#x: pin at the limit: %v, want ErrBusy", flags, err)
		}
		if e.loadWord() != w {
			t.Fatalf("a refused pin changed the word %#x -> %#x", w, e.loadWord())
		}
	}
}

// TestPinLimitInCache crafts an entry of a real cache one pin below the
// limit: Pin takes the last pin and raises the counter, the next Pin is
// ErrBusy, Gets raise the counter to its maximum and stop there, and the
// Release leaves the counter and the pins right.
func TestPinLimitInCache(t *testing.T) {
	withoutHazards(t)
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	if err := c.Set(k, []byte("value")); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	st := c.cur()
	id, _, _, _, f := st.find(c.hash(k), k)
	if f != foundYes {
		c.mu.Unlock()
		t.Fatal("not found")
	}
	e := st.entry(id)
	orig := e.loadWord()
	atomic.StoreUint64(&e.word, orig|(maxWordPins-1)<<pinShift)
	st.pol.clearRef(id + numLists)
	refOf := func(uint64) uint64 { return st.pol.refOf(id + numLists) }
	c.mu.Unlock()
	defer func() { // as it was, so that Close is not busy
		c.mu.Lock()
		atomic.StoreUint64(&e.word, e.loadWord()&^(maxPins<<pinShift))
		c.mu.Unlock()
	}()

	v, h, err := c.Pin(k)
	if err != nil || string(v) != "value" {
		t.Fatalf("pin below the limit: %q, %v", v, err)
	}
	w := e.loadWord()
	if pinsOf(w) != maxWordPins || refOf(w) != 1 || w&identity != orig&identity {
		t.Fatalf("after the last pin: pins %d, counter %d, identity %#x (was %#x)", pinsOf(w), refOf(w), w&identity, orig&identity)
	}
	if _, _, err := c.Pin(k); !errors.Is(err, ErrBusy) {
		t.Fatalf("pin at the limit: %v, want ErrBusy", err)
	}
	for range 5 {
		if got, ok := c.Get(nil, k); !ok || string(got) != "value" {
			t.Fatalf("get at the limit: %q %v", got, ok)
		}
	}
	w = e.loadWord()
	if pinsOf(w) != maxWordPins || refOf(w) != maxRef || w&identity != orig&identity {
		t.Fatalf("after gets at the limit: pins %d, counter %d", pinsOf(w), refOf(w))
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	w = e.loadWord()
	if pinsOf(w) != maxWordPins-1 || refOf(w) != maxRef || w&identity != orig&identity {
		t.Fatalf("after release: pins %d, counter %d", pinsOf(w), refOf(w))
	}
}

// hotCounterStress has readers Get and Pin a few hot keys (so their
// counters are raised by CAS all the time) while churners Set cold keys (so
// the policy sweeps and clears counters and evicts), replace and delete the
// hot keys, and a resizer shrinks and grows the cache (rebuilds and
// compactions of an owned pool, evictions of a shared one). Every value
// read must be the key's, and no pinned view may change. Afterwards the
// entry table holds no pins, no parked or moving bits, the parked list is
// empty, and Stats say so.
func hotCounterStress(t *testing.T, c *Cache, dur time.Duration) {
	t.Helper()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 8)))
	const hot = 8
	for i := range hot {
		if err := c.Set(key(i), value(i, 0, 100+i)); err != nil {
			t.Fatal(err)
		}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	okErr := func(err error) bool {
		return err == nil || errors.Is(err, ErrFull) || errors.Is(err, ErrRejected) || errors.Is(err, ErrTooLarge)
	}
	for g := range 6 { // readers
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				r := rand.New(rand.NewPCG(uint64(g), 4))
				var pins []held
				var buf []byte
				defer func() {
					for _, p := range pins {
						_ = p.h.Release()
					}
				}()
				for n := 0; !stop.Load(); n++ {
					i := r.IntN(hot)
					switch op := r.IntN(10); {
					case op < 6:
						var ok bool
						if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
							return fmt.Errorf("hot key %d read bad", i)
						}
					case op < 8:
						hd, ok, err := pinValid(c, i)
						if err != nil {
							return err
						}
						if ok {
							pins = append(pins, hd)
						}
					default:
						if len(pins) > 0 {
							k := r.IntN(len(pins))
							if !bytes.Equal(pins[k].view, pins[k].val) {
								return fmt.Errorf("pinned view of key %d changed", pins[k].i)
							}
							if err := pins[k].h.Release(); err != nil {
								return fmt.Errorf("release: %w", err)
							}
							pins = append(pins[:k], pins[k+1:]...)
						}
					}
					if len(pins) > 6 {
						if err := pins[0].h.Release(); err != nil {
							return fmt.Errorf("release: %w", err)
						}
						pins = pins[1:]
					}
				}
				for _, p := range pins {
					if !bytes.Equal(p.view, p.val) {
						return fmt.Errorf("pinned view of key %d changed", p.i)
					}
				}
				return nil
			}()
		}()
	}
	for g := range 2 { // churners
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				r := rand.New(rand.NewPCG(uint64(g), 5))
				for n := 0; !stop.Load(); n++ {
					switch op := r.IntN(20); {
					case op < 16:
						i := hot + r.IntN(2000)
						if err := c.Set(key(i), value(i, n, 50+r.IntN(400))); !okErr(err) {
							return fmt.Errorf("set cold: %w", err)
						}
					case op < 19:
						i := r.IntN(hot)
						if err := c.Set(key(i), value(i, n, 100+r.IntN(200))); !okErr(err) {
							return fmt.Errorf("replace hot: %w", err)
						}
					default:
						if _, err := c.Delete(key(r.IntN(hot))); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	wg.Add(1)
	go func() { // resizer
		defer wg.Done()
		r := rand.New(rand.NewPCG(6, 6))
		for !stop.Load() {
			n := []int{2 << 10, 8 << 10, 32 << 10, 64 << 10}[r.IntN(4)]
			if err := c.Resize(n); err != nil && !errors.Is(err, ErrFull) {
				errs <- fmt.Errorf("resize %d: %w", n, err)
				return
			}
			time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
		}
		errs <- nil
	}()
	within(t, "hot counter stress", func() { stopAfter(t, dur, &stop, &wg, errs) })
	checkQuiet(t, c)
}

// checkQuiet checks a cache no one holds pins in: the entry table has no
// pins and no parked or moving bits, the policy's parked list is empty,
// free entries have clean words, and Stats count no handles or pinned
// bytes and agree with the invariants.
func checkQuiet(t *testing.T, c *Cache) {
	t.Helper()
	verifyT(t, c)
	c.mu.Lock()
	s := c.cur()
	for id := range s.nextID {
		w := s.entry(id).loadWord()
		if pinsOf(w) != 0 || w&(parkedBit|movingBit) != 0 || stateOf(w) == stateGone {
			t.Errorf("entry %d: word %#x with nobody holding it", id, w)
		}
		if stateOf(w) == stateFree && w&^genMask != 0 {
			t.Errorf("free entry %d: word %#x", id, w)
		}
	}
	if n := s.pol.lists[parked-1]; n != 0 {
		t.Errorf("%d bytes parked with no pins out", n)
	}
	c.mu.Unlock()
	st := c.Stats()
	if st.Handles != 0 || st.BytesPinned != 0 || st.BytesUsed > st.Budget {
		t.Errorf("stats %+v", st)
	}
}

func hotDur() time.Duration {
	if testing.Short() {
		return 150 * time.Millisecond
	}
	return 700 * time.Millisecond
}

func TestHotCountersRacingEverythingOwned(t *testing.T) {
	stressThenClose(t, 32<<10, 64<<10, 0, func(c *Cache, _ *pool.Pool) { hotCounterStress(t, c, hotDur()) })
}

func TestHotCountersRacingEverythingShared(t *testing.T) {
	stressThenClose(t, 32<<10, 64<<10, 48<<10, func(c *Cache, _ *pool.Pool) { hotCounterStress(t, c, hotDur()) })
}

// TestCloseRacingHotHits closes caches while readers hammer their hot keys
// (raising counters by CAS up to the last moment) on a shared pool: Close
// must not be busy without pins, readers must see only good values or
// misses, and the pool must be empty after.
func TestCloseRacingHotHits(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 4)))
	p, err := pool.New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rounds := 40
	if testing.Short() {
		rounds = 10
	}
	within(t, "close racing hot hits", func() {
		for round := range rounds {
			c, err := New(64<<10, &Options{Pool: p})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 16 {
				if err := c.Set(key(i), value(i, round, 200)); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			var bad atomic.Int64
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var buf []byte
					for n := 0; ; n++ {
						i := (n + g) % 16
						var ok bool
						if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
							bad.Add(1)
						}
						if n%3 == 0 {
							if v, h, err := c.Pin(key(i)); err == nil {
								if !valid(v, i) {
									bad.Add(1)
								}
								_ = h.Release()
							} else if errors.Is(err, ErrClosed) {
								return
							}
						}
						if !ok && n > 1000 {
							return
						}
					}
				}()
			}
			time.Sleep(time.Duration(round%5) * 100 * time.Microsecond)
			for {
				err := c.Close()
				if err == nil {
					break
				}
				if !errors.Is(err, ErrBusy) {
					t.Fatal(err)
				}
				runtime.Gosched()
			}
			wg.Wait()
			if bad.Load() != 0 {
				t.Fatalf("round %d: %d bad reads", round, bad.Load())
			}
			if st := p.Stats(); st.UsedSegments != 0 || st.Used != 0 {
				t.Fatalf("round %d: pool after close: %+v", round, st)
			}
		}
	})
}

// TestRetiredStoresAreCollected checks that a store a rebuild replaced,
// and the last store of a closed cache, become unreachable, so that the
// cleanups that unmap their tables (vmem.Retire) and, under the race
// detector, free their policies (store.retire) run. A store kept reachable
// keeps a dozen mappings each: under -race, where Resizes rebuild often,
// the package's tests ran out of mappings ("fatal error: runtime: out of
// memory") once the policy held a pointer into its store.
func TestRetiredStoresAreCollected(t *testing.T) {
	var freed atomic.Int32
	watch := func(s *store) { runtime.AddCleanup(s, func(n *atomic.Int32) { n.Add(1) }, &freed) }
	func() {
		c, err := New(64<<10, &Options{MaxBudget: 128 << 10})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if err := c.Set(key(i), value(i, 0, 500)); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 50 {
			c.Get(nil, key(i))
		}
		watch(c.cur())
		if err := c.Resize(32 << 10); err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.Rebuilds != 1 {
			t.Fatalf("%d rebuilds, want 1", st.Rebuilds)
		}
		watch(c.cur())
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	for i := 0; i < 200 && freed.Load() < 2; i++ {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if n := freed.Load(); n < 2 {
		t.Fatalf("%d of 2 retired stores collected after 200 GCs", n)
	}
}

// TestHitRacingEvictionIsNoEviction has readers Get the keys a writer set
// last, in a cache of 16 entries the writer keeps evicting from, so that a
// hit often raises the counter of the victim the policy has just chosen.
// The ghost must remember exactly the evictions made: a victim whose word
// changed only by a hit has no pins and is evicted, not taken for pinned,
// recorded as evicted (feeding the tuner a phantom eviction) and re-added
// as new.
func TestHitRacingEvictionIsNoEviction(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), 4)))
	c, err := New(16*64, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var latest atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for n := 0; !stop.Load(); n++ {
				if i := int(latest.Load()) - (n*7+g)%16; i >= 0 {
					buf, _ = c.Get(buf[:0], key(i))
				}
			}
		}()
	}
	dur := time.Second
	if testing.Short() {
		dur = 300 * time.Millisecond
	}
	within(t, "sets racing hits", func() {
		for i, deadline := 0, time.Now().Add(dur); time.Now().Before(deadline); i++ {
			if err := c.Set(key(i), make([]byte, 40)); err != nil {
				t.Error(err)
				break
			}
			latest.Store(int64(i))
		}
		stop.Store(true)
		wg.Wait()
	})
	c.mu.Lock()
	p := c.cur().pol
	remembered, evicted := int(p.evictions&^ghostMain)+int(p.rejects), c.ops.evictions
	c.mu.Unlock()
	if remembered != evicted || evicted == 0 {
		t.Fatalf("the ghost remembers %d evictions, %d were made", remembered, evicted)
	}
}
