// Hit-ratio replay through the real Cache: the policy as the cache drives it
// (its hash, its admit/evict/add order, byte weights).

package cache

import (
	"encoding/binary"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/offheap/offheap/internal/check"
)

// TestCacheHitRatio replays two small traces through Get and, on a miss,
// Set, with a budget of exactly capacity entries, and holds them to the
// same bounds as TestPolicyHitRatio.
func TestCacheHitRatio(t *testing.T) {
	points := []tracePoint{
		{"lirs_loop", 500, 0.0, 48.7},
		{"lirs_sprite", 708, 86.5, 86.5},
		{"lirs_multi2", 568, 36.9, 50.3},
		{"lirs_ps", 62, 7.4, 16.6},
	}
	switch {
	case check.On:
		points = points[3:] // the smallest trace: the checked build verifies the cache as it goes
	case testing.Short():
		points = points[:1]
	}
	for _, pt := range points {
		keys := readTrace(t, "testdata/traces/"+pt.trace+".keys.gz")
		got := replayCache(t, keys, pt.capacity)
		t.Logf("%-12s %5d  lru %5.1f  best peer %5.1f  cache %6.2f", pt.trace, pt.capacity, pt.lru, pt.best, got)
		if got < pt.lru-1 || got < pt.best-4 {
			t.Errorf("%s at %d: hit ratio %.2f%%, want at least %.1f", pt.trace, pt.capacity, got, max(pt.lru-1, pt.best-4))
		}
	}
}

func replayCache(t *testing.T, keys []uint64, capacity int) float64 {
	t.Helper()
	var k, v [8]byte
	probe, err := New(1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.Set(k[:], v[:]); err != nil {
		t.Fatal(err)
	}
	weight := probe.Stats().BytesUsed
	_ = probe.Close()
	c, err := New(capacity*weight, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 0, 8)
	hits := 0
	for _, key := range keys {
		binary.BigEndian.PutUint64(k[:], key)
		if _, ok := c.Get(buf[:0], k[:]); ok {
			hits++
			continue
		}
		if err := c.Set(k[:], v[:]); err != nil && !errors.Is(err, ErrRejected) {
			t.Fatal(err)
		}
	}
	if st := c.Stats(); st.BytesUsed > st.Budget || st.Entries > capacity {
		t.Fatalf("%d entries, %d bytes, over a budget of %d entries, %d bytes", st.Entries, st.BytesUsed, capacity, st.Budget)
	}
	return 100 * float64(hits) / float64(len(keys))
}

// wordOf returns the entry word of key in c, its CLOCK counter, the word
// of the policy's table holding that counter, and the sketch's estimate for
// its hash.
func wordOf(t *testing.T, c *Cache, key []byte) (w, ref, refs uint64, freq int) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	st, h := c.cur(), c.hash(key)
	id, _, _, _, f := st.find(h, key)
	if f != foundYes {
		t.Fatalf("key %q not found", key)
	}
	r, _ := st.pol.ref(id + numLists)
	return st.entry(id).loadWord(), st.pol.refOf(id + numLists), atomic.LoadUint64(r), st.pol.sk.frequency(h)
}

// TestHitAtMaxCounterWritesNothing checks what a hit writes: Gets and Pins
// raise the entry's CLOCK counter in the policy's table up to its maximum,
// each raise counting the key in the sketch; once at the maximum a hit
// changes neither the counters, nor the entry word, nor the sketch, and a
// pin's count lives apart from the counter.
func TestHitAtMaxCounterWritesNothing(t *testing.T) {
	c := newT(t, 1<<20, nil)
	key := []byte("hot")
	if err := c.Set(key, []byte("value")); err != nil {
		t.Fatal(err)
	}
	w0, r0, _, f0 := wordOf(t, c, key)
	if r0 != 0 {
		t.Fatalf("a new entry's counter is %d, want 0", r0)
	}
	for i := range maxRef {
		if i == 1 {
			_, h, err := c.Pin(key)
			if err != nil {
				t.Fatal(err)
			}
			if w, r, _, _ := wordOf(t, c, key); pinsOf(w) != 1 || r != 2 {
				t.Fatalf("pinned: pins %d, counter %d; want 1 and 2", pinsOf(w), r)
			}
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, ok := c.Get(nil, key); !ok {
			t.Fatal("miss")
		}
	}
	w, r, refs, f := wordOf(t, c, key)
	if r != maxRef || pinsOf(w) != 0 || w&^ticketMask != w0 || f != f0+maxRef { // the pin's release moved the ticket on
		t.Fatalf("after %d hits: counter %d, pins %d, word %#x (was %#x), frequency %d (was %d)",
			maxRef, r, pinsOf(w), w, w0, f, f0)
	}
	for range 10 {
		c.Get(nil, key)
	}
	if w2, _, refs2, f2 := wordOf(t, c, key); w2 != w || refs2 != refs || f2 != f {
		t.Fatalf("hits at the maximum changed the word %#x -> %#x, the counters %#x -> %#x, the frequency %d -> %d",
			w, w2, refs, refs2, f, f2)
	}
	if st := c.Stats(); st.Hits != 13 {
		t.Fatalf("%d hits counted, want 13", st.Hits)
	}
}
