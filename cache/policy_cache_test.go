// Hit-ratio replay through the real Cache: the policy as the cache drives it
// (its hash, its admit/evict/add order, byte weights).

package cache

import (
	"container/list"
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
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

// TestMixedSizesHitRatio replays a recency trace through a 1 MiB cache of
// values from 20 to 4,000 bytes, whose pool's free space ends up in pieces
// too small for what comes, against an exact LRU bounded by the same bytes:
// it requires the cache at most 8 points below. When the policy sized
// itself by the budget the cache could not reach, it let every new entry in
// unopposed: 53.31% here against LRU's 70.17% (70.07% now).
func TestMixedSizesHitRatio(t *testing.T) {
	if proc.Race || check.On || testing.Short() {
		t.Skip("replays 300,000 requests; TestCacheHitRatio covers these builds")
	}
	const budget = 1 << 20
	r := rand.New(rand.NewPCG(5, 5))
	var keys []uint64
	for i := range 300_000 {
		if d := int(math.Abs(r.NormFloat64()) * 800); i > 0 && r.Float64() < 0.7 {
			keys = append(keys, keys[max(len(keys)-1-d, 0)])
			continue
		}
		keys = append(keys, uint64(i))
	}
	size := func(k uint64) int { // 70% of 20-119 bytes, 20% of 300-799, 10% of 2,000-3,999
		h := mix64(k ^ 0x5555)
		switch h % 10 {
		case 0:
			return 2000 + int(h>>8%2000)
		case 1, 2:
			return 300 + int(h>>8%500)
		}
		return 20 + int(h>>8%100)
	}
	c, err := New(budget, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	weight := func(k uint64) int { return int(c.weight(uint64(8 + size(k)))) }
	var kb [8]byte
	val := make([]byte, 4000)
	hits := 0
	for _, k := range keys {
		binary.BigEndian.PutUint64(kb[:], k)
		if _, ok := c.Get(nil, kb[:]); ok {
			hits++
		} else if err := c.Set(kb[:], val[:size(k)]); err != nil && !errors.Is(err, ErrRejected) {
			t.Fatal(err)
		}
	}
	got, lru := 100*float64(hits)/float64(len(keys)), byteLRUHitRatio(keys, budget, weight)
	t.Logf("cache %.2f  lru %.2f", got, lru)
	if got < lru-8 {
		t.Errorf("hit ratio %.2f%%, LRU bounded by the same bytes %.2f%%: more than 8 below", got, lru)
	}
}

// byteLRUHitRatio replays keys through an exact LRU holding at most budget
// bytes, entries weighing weight(key), with demand fill.
func byteLRUHitRatio(keys []uint64, budget int, weight func(uint64) int) float64 {
	order := list.New()
	at := map[uint64]*list.Element{}
	used, hits := 0, 0
	for _, k := range keys {
		if e, ok := at[k]; ok {
			hits++
			order.MoveToFront(e)
			continue
		}
		for used+weight(k) > budget && order.Len() > 0 {
			v := order.Remove(order.Back()).(uint64)
			delete(at, v)
			used -= weight(v)
		}
		at[k] = order.PushFront(k)
		used += weight(k)
	}
	return 100 * float64(hits) / float64(len(keys))
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
	withoutHazards(t) // it watches the pins in the word
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
