// Tests of an entry's own handle: the first of its concurrent pins takes
// it with the pin's CAS, without a handle slot, and a stale one is refused.

package cache

import (
	"errors"
	"sync"
	"testing"
)

// slotsUsed returns the handle slots the cache ever took.
func slotsUsed(c *Cache) uint32 {
	c.handles.mu.Lock()
	defer c.handles.mu.Unlock()
	return c.handles.n
}

// TestLonePinTakesTheOwnHandle checks that a lone pin takes no handle slot
// and a second concurrent pin on the entry does; that either may be released
// first; and that Stats counts both.
func TestLonePinTakesTheOwnHandle(t *testing.T) {
	withoutHazards(t)
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	if err := c.Set(k, []byte("value")); err != nil {
		t.Fatal(err)
	}
	for _, ownFirst := range []bool{true, false} {
		_, a, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		if !a.own() {
			t.Fatal("a lone pin took a handle slot")
		}
		if w, _, _, _ := wordOf(t, c, k); w&ownBit == 0 || pinsOf(w) != 1 {
			t.Fatalf("after a lone pin: word %#x", w)
		}
		_, b, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		if b.own() || slotsUsed(c) == 0 {
			t.Fatal("a second pin took no handle slot")
		}
		if st := c.Stats(); st.Handles != 2 || st.BytesPinned == 0 {
			t.Fatalf("two pins out: %d handles, %d bytes pinned", st.Handles, st.BytesPinned)
		}
		first, second := a, b
		if !ownFirst {
			first, second = b, a
		}
		if err := first.Release(); err != nil {
			t.Fatal(err)
		}
		if w, _, _, _ := wordOf(t, c, k); pinsOf(w) != 1 || (w&ownBit != 0) != !ownFirst {
			t.Fatalf("own released first %v: word %#x", ownFirst, w)
		}
		if err := second.Release(); err != nil {
			t.Fatal(err)
		}
		if w, _, _, _ := wordOf(t, c, k); pinsOf(w) != 0 || w&ownBit != 0 {
			t.Fatalf("both released: word %#x", w)
		}
		if st := c.Stats(); st.Handles != 0 || st.BytesPinned != 0 {
			t.Fatalf("no pins out: %d handles, %d bytes pinned", st.Handles, st.BytesPinned)
		}
	}
}

// TestStaleOwnHandleIsRefused releases own Handles again after their entry
// was pinned again (a later use of its own handle out), after a rebuild put
// another entry under the same id and generation, and after the entry was
// freed: each is ErrReleased and leaves the pin that is out alone.
func TestStaleOwnHandleIsRefused(t *testing.T) {
	withoutHazards(t)
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	if err := c.Set(k, []byte("value")); err != nil {
		t.Fatal(err)
	}
	pin := func() Handle {
		t.Helper()
		_, h, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		if !h.own() {
			t.Fatal("a lone pin took a handle slot")
		}
		return h
	}
	holds := func(what string, stale, live Handle) {
		t.Helper()
		if err := stale.Release(); !errors.Is(err, ErrReleased) {
			t.Fatalf("%s: stale release: %v, want ErrReleased", what, err)
		}
		if w, _, _, _ := wordOf(t, c, k); pinsOf(w) != 1 || w&ownBit == 0 {
			t.Fatalf("%s: the stale release changed the live pin: word %#x", what, w)
		}
		if err := live.Release(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	stale := pin()
	if err := stale.Release(); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := pin().Release(); err != nil {
			t.Fatal(err)
		}
	}
	holds("own handle taken again", stale, pin())

	// Taken again as often as the ticket counts: the ticket is back where
	// it was, and only the generation tells the Handles apart.
	stale = pin()
	if err := stale.Release(); err != nil {
		t.Fatal(err)
	}
	for range ticketMask >> ticketShift {
		if err := pin().Release(); err != nil {
			t.Fatal(err)
		}
	}
	live := pin()
	if live.h&ticketMask != stale.h&ticketMask {
		t.Fatalf("after %d uses: tag %#x, stale %#x: the test needs the same ticket", ticketMask>>ticketShift+1, live.h, stale.h)
	}
	holds("own handle taken again as often as the ticket counts", stale, live)

	// A rebuild moves the entry to a new store under the id, generation
	// and ticket it had: the stale Handle names the old store, which
	// Release must not read (the checked build unmaps it at once, so
	// reading it faults there).
	c2 := newT(t, 1<<20, nil)
	if err := c2.Set(k, []byte("value")); err != nil {
		t.Fatal(err)
	}
	c = c2
	stale = pin()
	if err := stale.Release(); err != nil {
		t.Fatal(err)
	}
	rebuilds := c.Stats().Rebuilds
	if err := c.Resize(1 << 19); err != nil {
		t.Fatal(err)
	}
	if c.Stats().Rebuilds != rebuilds+1 {
		t.Fatal("Resize did not rebuild")
	}
	live = pin()
	if live.id != stale.id || live.h != stale.h {
		t.Fatalf("the rebuild gave the entry id %d tag %#x, not %d %#x: the test needs them equal", live.id, live.h, stale.id, stale.h)
	}
	holds("after a rebuild", stale, live)

	// Freed and reused: a new generation.
	stale = pin()
	if err := stale.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(k); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(k, []byte("value")); err != nil {
		t.Fatal(err)
	}
	holds("after the entry was freed", stale, pin())
}

// TestOwnHandleReleasedTwiceAtOnce releases one own Handle from two
// goroutines at once: exactly one succeeds, and the pin is dropped once.
func TestOwnHandleReleasedTwiceAtOnce(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	if err := c.Set(k, []byte("value")); err != nil {
		t.Fatal(err)
	}
	for range 2000 {
		_, other, err := c.Pin(k) // holds the own handle half the time
		if err != nil {
			t.Fatal(err)
		}
		_, h, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Release(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() { errs[i] = h.Release() })
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || !errors.Is(errors.Join(errs...), ErrReleased) {
			t.Fatalf("two releases of one handle: %v and %v", errs[0], errs[1])
		}
		if w, _, _, _ := wordOf(t, c, k); pinsOf(w) != 0 || w&ownBit != 0 {
			t.Fatalf("after the releases: word %#x", w)
		}
	}
}

// TestDeletedEntryFreedByOwnOrSlot deletes an entry pinned through its own
// handle and a slot, and releases them in both orders: the value stays
// readable until the last release, which frees its bytes.
func TestDeletedEntryFreedByOwnOrSlot(t *testing.T) {
	for _, ownFirst := range []bool{true, false} {
		c := newT(t, 1<<20, nil)
		k := []byte("k")
		if err := c.Set(k, []byte("value")); err != nil {
			t.Fatal(err)
		}
		v, a, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		_, b, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := c.Delete(k); !ok || err != nil {
			t.Fatalf("delete: %v %v", ok, err)
		}
		first, second := a, b
		if !ownFirst {
			first, second = b, a
		}
		if err := first.Release(); err != nil {
			t.Fatal(err)
		}
		if string(v) != "value" || c.Stats().BytesUsed == 0 {
			t.Fatalf("own first %v: after the first release: %q, %d bytes used", ownFirst, v, c.Stats().BytesUsed)
		}
		if err := second.Release(); err != nil {
			t.Fatal(err)
		}
		if st := c.Stats(); st.BytesUsed != 0 || st.BytesPinned != 0 || st.Handles != 0 {
			t.Fatalf("own first %v: after the last release: %+v", ownFirst, st)
		}
	}
}

// TestOwnReleasedWord checks the word an own handle's Release leaves: one
// pin fewer, the own bit clear, the next ticket; at the last ticket, ticket
// 0 and the next generation, short of the last generation, which only
// freeing gives.
func TestOwnReleasedWord(t *testing.T) {
	const flags = liveBits | parkedBit | 3*pinOne | ownBit
	for _, c := range []struct{ w, want uint64 }{
		{7 | flags | 5<<ticketShift, 7 | flags - pinOne - ownBit | 6<<ticketShift},
		{7 | flags | ticketMask, 8 | flags - pinOne - ownBit},
		{genMask - 2 | flags | ticketMask, genMask - 1 | flags - pinOne - ownBit},
		{genMask - 1 | flags | ticketMask, genMask - 1 | flags - pinOne - ownBit},
	} {
		if got := ownReleased(c.w); got != c.want {
			t.Errorf("ownReleased(%#x) = %#x, want %#x", c.w, got, c.want)
		}
	}
}

// TestPinWithoutSlotTakesOnlyTheOwnHandle checks entry.pin without a
// handle slot in hand: it takes the own handle if free, and otherwise
// changes nothing and asks for a slot.
func TestPinWithoutSlotTakesOnlyTheOwnHandle(t *testing.T) {
	base := uint64(9) | liveBits
	e := &entry{word: base}
	if old, err := e.pin(base, false); err != nil || old != base || e.loadWord() != base+pinOne|ownBit {
		t.Fatalf("own handle free: old %#x, %v, word %#x", old, err, e.loadWord())
	}
	w := e.loadWord()
	if old, err := e.pin(base, false); !errors.Is(err, errNoSlot) || old != w || e.loadWord() != w {
		t.Fatalf("own handle out: old %#x, %v, word %#x (was %#x)", old, err, e.loadWord(), w)
	}
	if old, err := e.pin(w, true); err != nil || old != w || e.loadWord() != w+pinOne {
		t.Fatalf("own handle out, slot in hand: old %#x, %v, word %#x", old, err, e.loadWord())
	}
}
