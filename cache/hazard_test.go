// Tests of hazard pins: the fast path's pins, their promotion by every
// writer that needs an entry's pins, and their limits.

package cache

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
)

// withoutHazards turns Pin's hazard fast path off for the rest of the
// test, for tests of the pins an entry's word holds.
func withoutHazards(t *testing.T) {
	hazardsOff = true
	t.Cleanup(func() { hazardsOff = false })
}

// hazardSlots counts the hazard slots in use, and those promoted.
func hazardSlots(c *Cache) (n, promoted int) {
	for i := range c.haz.lines {
		for j := range c.haz.lines[i].slots {
			if v := atomic.LoadUint64(&c.haz.lines[i].slots[j]); v&hazInUse != 0 {
				n++
				if v&hazPromoted != 0 {
					promoted++
				}
			}
		}
	}
	return n, promoted
}

// releaseTwiceT releases h, which must succeed, and again, which must be
// ErrReleased.
func releaseTwiceT(t *testing.T, h Handle) {
	t.Helper()
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); !errors.Is(err, ErrReleased) {
		t.Fatalf("second release: %v", err)
	}
}

// quietT checks that no pin is left: no hazard slot in use, no handle or
// pinned byte counted, and the checked invariants.
func quietT(t *testing.T, c *Cache) {
	t.Helper()
	if n, _ := hazardSlots(c); n != 0 {
		t.Errorf("%d hazards out", n)
	}
	if st := c.Stats(); st.Handles != 0 || st.BytesPinned != 0 {
		t.Errorf("no pins out, yet %+v", st)
	}
	verifyT(t, c)
}

// pinHazardT pins key, which must take a hazard pin.
func pinHazardT(t *testing.T, c *Cache, key []byte) ([]byte, Handle) {
	t.Helper()
	if check.On {
		t.Skip("the checked build pins under the lock, without hazards")
	}
	v, h, err := c.Pin(key)
	if err != nil {
		t.Fatal(err)
	}
	if !h.hazard() {
		t.Fatalf("pin of %q took no hazard", key)
	}
	return v, h
}

// TestHazardPinTouchesNoWord: a lone pin of a quiet cache is a hazard: the
// entry's word is unchanged, Stats counts the pin and its bytes once (also
// for two pins of one entry), Close is busy, and the releases clear the
// slots; a second Release is ErrReleased.
func TestHazardPinTouchesNoWord(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k, v := []byte("key"), value(1, 1, 100)
	setT(t, c, k, v)
	id, _ := entryOf7(t, c, k)
	w := wordAt7(c, id)
	got, h1 := pinHazardT(t, c, k)
	_, h2 := pinHazardT(t, c, k)
	if !bytes.Equal(got, v) || wordAt7(c, id) != w {
		t.Fatalf("view %v, word %#x -> %#x", bytes.Equal(got, v), w, wordAt7(c, id))
	}
	if n, _ := hazardSlots(c); n != 2 {
		t.Fatalf("%d hazards out, want 2", n)
	}
	if st := c.Stats(); st.Handles != 2 || st.BytesPinned != int(c.weight(uint64(len(k)+len(v)))) {
		t.Fatalf("stats %+v", st)
	}
	if err := c.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("close with pins out: %v", err)
	}
	releaseTwiceT(t, h1)
	releaseTwiceT(t, h2)
	if pinsOf(wordAt7(c, id)) != 0 {
		t.Fatalf("after the releases: word %#x", wordAt7(c, id))
	}
	quietT(t, c)
}

// TestHazardPromotedByWriters: each writer that needs an entry's pins
// (Delete, a Set of another length, a same-length Set, a Resize that
// compacts; eviction is TestHazardPinsStopEviction's) finds a hazard pin, promotes it and keeps the pinned view
// as it was; the Release then drops the promoted pin, freeing what the
// writer left for it.
func TestHazardPromotedByWriters(t *testing.T) {
	const budget = 64 << 10
	writers := []struct {
		name string
		do   func(c *Cache, k []byte) error
	}{
		{"delete", func(c *Cache, k []byte) error { _, err := c.Delete(k); return err }},
		{"set longer", func(c *Cache, k []byte) error { return c.Set(k, value(9, 9, 300)) }},
		{"set same length", func(c *Cache, k []byte) error { return c.Set(k, value(9, 9, 100)) }},
		{"resize", func(c *Cache, k []byte) error {
			if err := c.Resize(budget / 4); err != nil {
				return err
			}
			return c.Resize(budget)
		}},
	}
	for _, wr := range writers {
		t.Run(wr.name, func(t *testing.T) {
			c := newT(t, budget, &Options{MaxBudget: 2 * budget})
			k, v := []byte("pinned"), value(1, 1, 100)
			setT(t, c, k, v)
			for i := range 50 {
				setT(t, c, []byte{'o', byte(i)}, value(i, 3, 100))
			}
			got, h := pinHazardT(t, c, k)
			was := bytes.Clone(got)
			if err := wr.do(c, k); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, was) || !bytes.Equal(got, v) {
				t.Fatal("the pinned view changed")
			}
			if n, p := hazardSlots(c); n != 1 || p != 1 {
				t.Fatalf("hazards %d, promoted %d; want 1 and 1", n, p)
			}
			if st := c.Stats(); st.Handles != 1 || st.BytesPinned != int(c.weight(uint64(len(k)+len(v)))) {
				t.Fatalf("stats %+v", st)
			}
			verifyT(t, c)
			releaseTwiceT(t, h)
			quietT(t, c)
		})
	}
}

// TestHazardPinLimit: pins of one entry take its line's free hazard slots,
// then the word's pins up to maxWordPins; one more is ErrBusy. Every pin
// is counted, Close is busy, and releasing them all in any order leaves no
// pin anywhere.
func TestHazardPinLimit(t *testing.T) {
	if testing.Short() && slow {
		t.Skip("65528 pins")
	}
	c := newT(t, 1<<20, nil)
	k, v := []byte("k"), value(3, 0, 64)
	setT(t, c, k, v)
	id, _ := entryOf7(t, c, k)
	var hs []Handle
	for {
		_, h, err := c.Pin(k)
		if errors.Is(err, ErrBusy) {
			break
		}
		if err != nil {
			t.Fatalf("pin %d: %v", len(hs), err)
		}
		hs = append(hs, h)
	}
	if len(hs) < maxWordPins || len(hs) > maxWordPins+hazAll {
		t.Fatalf("%d pins before ErrBusy, want %d and a hazard slot or more", len(hs), maxWordPins)
	}
	if st := c.Stats(); st.Handles != len(hs) {
		t.Fatalf("%d handles counted, %d out", st.Handles, len(hs))
	}
	// Stats promoted the hazards: the word holds every pin, within its field.
	if w := wordAt7(c, id); pinsOf(w) != uint64(len(hs)) || stateOf(w) != stateLive {
		t.Fatalf("word %#x: %d pins", w, pinsOf(w))
	}
	if err := c.Close(); !errors.Is(err, ErrBusy) {
		t.Fatalf("close: %v", err)
	}
	for i := len(hs) - 1; i >= 0; i -= 2 {
		if err := hs[i].Release(); err != nil {
			t.Fatal(err)
		}
	}
	for i := len(hs) - 2; i >= 0; i -= 2 {
		if err := hs[i].Release(); err != nil {
			t.Fatal(err)
		}
	}
	if pinsOf(wordAt7(c, id)) != 0 {
		t.Fatalf("after the releases: word %#x", wordAt7(c, id))
	}
	quietT(t, c)
}

// TestHazardPinsRacingWriters: pinners on a few keys race a writer that
// deletes, sets (same length and not), and a resizer; every view stays as
// pinned until its release, and at the end no pin, hazard or pinned byte
// is left.
func TestHazardPinsRacingWriters(t *testing.T) {
	const budget = 32 << 10
	c := newT(t, budget, &Options{MaxBudget: 4 * budget})
	keys, others := keys6(8), keys6(64)[8:]
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for p := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				k := keys[(i+p)%len(keys)]
				v, h, err := c.Pin(k)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				was := bytes.Clone(v)
				for range 20 {
					if !bytes.Equal(v, was) {
						errs <- errors.New("a pinned view changed")
						return
					}
				}
				if err := h.Release(); err != nil {
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
			k := keys[i%len(keys)]
			var err error
			switch i % 5 {
			case 0:
				_, err = c.Delete(k)
			case 1, 2:
				err = c.Set(k, value(i, 1, 100))
			case 3:
				err = c.Set(k, value(i, 1, 50+i%200))
			case 4:
				err = c.Set(others[i%len(others)], value(i, 2, 900))
			}
			if err != nil && !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) {
				errs <- err
				return
			}
			if i%97 == 0 {
				if err := c.Resize(budget / (1 + i%3)); err != nil {
					errs <- err
					return
				}
			}
		}
	}()
	time.Sleep(400 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	quietT(t, c)
}

// TestHazardPinsStopEviction: with every entry pinned, a P's line of them
// by hazards, a Set of a
// new key must evict none of them: it fails with ErrFull, the policy having
// promoted and parked each; the views stay, and once they are released the
// Set succeeds.
func TestHazardPinsStopEviction(t *testing.T) {
	const budget = 4 << 10
	c := newT(t, budget, nil)
	var keys [][]byte
	for i := range 64 {
		keys = append(keys, []byte{'k', byte(i)})
	}
	type pin struct {
		v, was []byte
		h      Handle
	}
	var pins []pin
	for i, k := range keys {
		if err := c.Set(k, value(i, 1, 100)); err != nil {
			if errors.Is(err, ErrFull) || errors.Is(err, ErrRejected) {
				continue
			}
			t.Fatal(err)
		}
		v, h, err := c.Pin(k) // a hazard while the P's line has room
		if err != nil {
			t.Fatal(err)
		}
		pins = append(pins, pin{v, bytes.Clone(v), h})
	}
	if len(pins) < 2*hazSlots {
		t.Fatalf("only %d entries pinned", len(pins))
	}
	if n, _ := hazardSlots(c); n < hazSlots && !check.On { // the Sets' evictions may have promoted some
		t.Fatalf("%d hazards for %d pins", n, len(pins))
	}
	if err := c.Set([]byte("new"), value(0, 2, 100)); !errors.Is(err, ErrFull) {
		t.Fatalf("set with every entry pinned: %v, want ErrFull", err)
	}
	for _, p := range pins {
		if !bytes.Equal(p.v, p.was) {
			t.Fatal("a pinned view changed")
		}
	}
	verifyT(t, c)
	for _, p := range pins {
		if err := p.h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set([]byte("new"), value(0, 2, 100)); err != nil {
		t.Fatalf("set after the releases: %v", err)
	}
	quietT(t, c)
}
