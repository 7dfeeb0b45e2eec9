// Adversarial pass 10: Set's in-place rewrite (a same-length value copied
// over an unpinned entry's) against every reader, Resize, a shared pool's
// reclaimers and the generation's last values; and the release stores of
// package fence under the cache's readers.

package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/fence"
	"github.com/offheap/offheap/pool"
)

// key10 returns key i, padded to n bytes (at least key's own length): keys
// of 256 bytes or more have no location in the index, so Get goes by the
// entry's word (getSlow and find), not by the bucket's sequence number.
func key10(i, n int) []byte {
	k := key(i)
	if n > len(k) {
		k = append(k, bytes.Repeat([]byte{'.'}, n-len(k))...)
	}
	return k
}

// version10 returns the version value wrote into b.
func version10(b []byte) int { return int(binary.LittleEndian.Uint32(b[4:])) }

// rewriteRun10 describes one run of rewriteTorture10.
type rewriteRun10 struct {
	keyLen, valLen int
	keys           int           // keys 0..keys-1 are rewritten; none is ever absent
	pinned         int           // keys keys..keys+pinned-1 are only pinned, never set
	resize         bool          // a goroutine resizes between budget and 3/4 of it (all entries fit)
	pinRewritten   bool          // a reader also pins rewritten keys: their Sets go the long way, and misses are allowed
	d              time.Duration // how long the readers run
}

// rewriteTorture10 has two writers rewrite keys with values of one length
// (each key has one writer, so its versions only grow) while readers Get,
// Has, GetOrLoad and Pin. No key a writer rewrites is ever absent, so the
// contract says: no miss, no load, no torn or foreign value, and no reader
// sees a key's version go back. Pinned views must not change until their
// release. At the end the figures must be exact.
func rewriteTorture10(t *testing.T, r rewriteRun10) {
	budget := 256 << 10
	c := newT(t, budget, &Options{MaxBudget: budget})
	all := r.keys + r.pinned
	for i := range all {
		setT(t, c, key10(i, r.keyLen), value(i, 0, r.valLen))
	}
	before := c.Stats()
	var stop atomic.Bool
	var bad, misses, loads, sets, reads atomic.Int64
	var wg sync.WaitGroup
	var firstBad sync.Once
	report := func(format string, args ...any) {
		bad.Add(1)
		firstBad.Do(func() { t.Errorf(format, args...) })
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for n := 1; !stop.Load(); n++ {
				for i := g; i < r.keys; i += 2 {
					k, v := key10(i, r.keyLen), value(i, n, r.valLen)
					if err := c.Set(k, v); err != nil {
						report("set %d.%d: %v", i, n, err)
						return
					}
					sets.Add(1)
					var ok bool
					if buf, ok = c.Get(buf[:0], k); !ok || !bytes.Equal(buf, v) {
						report("Get right after Set of %d.%d: ok %v, version %d", i, n, ok, version10(buf))
					}
				}
			}
		}()
	}
	load := func(context.Context, []byte) ([]byte, error) {
		loads.Add(1)
		return nil, errors.New("no load expected")
	}
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := make([]int, all)
			var buf []byte
			seen := func(i int, b []byte, how string) {
				reads.Add(1)
				switch {
				case len(b) != r.valLen || !valid(b, i):
					report("%s of key %d: a torn or foreign value (%d bytes)", how, i, len(b))
				case version10(b) < last[i]:
					report("%s of key %d: version %d after %d", how, i, version10(b), last[i])
				default:
					last[i] = version10(b)
				}
			}
			for n := 0; !stop.Load(); n++ {
				i := (n*(g+1) + g) % r.keys
				k := key10(i, r.keyLen)
				switch (n + g) % 4 {
				case 0, 1:
					var ok bool
					if buf, ok = c.Get(buf[:0], k); !ok {
						misses.Add(1)
					} else {
						seen(i, buf, "Get")
					}
				case 2:
					if !c.Has(k) {
						misses.Add(1)
					}
				case 3:
					v, err := c.GetOrLoad(context.Background(), buf[:0], k, load)
					if err != nil {
						misses.Add(1)
					} else {
						buf = v
						seen(i, buf, "GetOrLoad")
					}
				}
				if r.pinRewritten && g == 2 && n%4 == 0 {
					// A pin of a rewritten key: it must stay as it was
					// while held, even with rewrites of the same length
					// going on (they must leave a pinned entry alone).
					v, h, err := c.Pin(k)
					if err != nil {
						misses.Add(1)
						continue
					}
					snap := append([]byte(nil), v...)
					seen(i, snap, "Pin")
					for range 20 {
						if !bytes.Equal(v, snap) {
							report("pinned view of key %d changed", i)
							break
						}
					}
					if err := h.Release(); err != nil {
						report("release: %v", err)
					}
				}
			}
		}()
	}
	if r.pinned > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				i := r.keys + n%r.pinned
				v, h, err := c.Pin(key10(i, r.keyLen))
				if err != nil {
					report("pin of never-set key %d: %v", i, err)
					return
				}
				if !valid(v, i) || version10(v) != 0 {
					report("pinned key %d: bad value", i)
				}
				time.Sleep(50 * time.Microsecond)
				if err := h.Release(); err != nil {
					report("release: %v", err)
				}
			}
		}()
	}
	if r.resize {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				b := budget
				if n%2 == 0 {
					b = budget * 3 / 4
				}
				if err := c.Resize(b); err != nil {
					report("resize to %d: %v", b, err)
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(r.d)
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Fatalf("%d bad reads or writes (of %d reads, %d sets)", n, reads.Load(), sets.Load())
	}
	if n := misses.Load(); n != 0 && !r.pinRewritten {
		t.Fatalf("%d misses of keys never absent (%d reads, %d sets)", n, reads.Load(), sets.Load())
	}
	if n := loads.Load(); n != 0 && !r.pinRewritten {
		t.Fatalf("%d loads of keys never absent", n)
	}
	if sets.Load() == 0 || reads.Load() == 0 {
		t.Fatalf("%d sets, %d reads: the run did nothing", sets.Load(), reads.Load())
	}
	st := c.Stats()
	weight := int(c.weight(uint64(r.keyLen + r.valLen)))
	if r.keyLen < len(key(0)) {
		weight = int(c.weight(uint64(len(key(0)) + r.valLen)))
	}
	if st.Entries != all || st.BytesUsed != all*weight || st.BytesPinned != 0 || st.Handles != 0 ||
		st.Evictions != 0 || st.Deletes != 0 || st.Sets != before.Sets+int(sets.Load()) || c.Len() != all {
		t.Fatalf("after %d sets: stats %+v (before %+v)", sets.Load(), st, before)
	}
	c.mu.Lock()
	err := c.verify()
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRewriteNeverMisses10 checks the rewrite's contract under racing
// readers: with short keys (Get's fast path, validated by the bucket's
// sequence number), long keys (the paths validated by the entry's word),
// and an entry of exactly lockedCopyMax bytes.
func TestRewriteNeverMisses10(t *testing.T) {
	d := 150 * time.Millisecond
	for _, r := range []rewriteRun10{
		{keyLen: 0, valLen: 100, keys: 6, pinned: 2, d: d},
		{keyLen: 300, valLen: 200, keys: 6, pinned: 2, d: d},
		{keyLen: 24, valLen: lockedCopyMax - 24, keys: 4, d: d},
		{keyLen: 0, valLen: 100, keys: 6, pinRewritten: true, d: d},
		{keyLen: 300, valLen: 200, keys: 6, pinRewritten: true, d: d},
	} {
		t.Run(fmt.Sprintf("key=%d,value=%d,pins=%v", r.keyLen, r.valLen, r.pinRewritten), func(t *testing.T) { rewriteTorture10(t, r) })
	}
}

// TestRewriteUnderResize10 runs the same with Resize shrinking and growing
// the budget meanwhile, every entry fitting either: rebuilds (no pins) and
// compactions (pins out) move the entries that rewrites overwrite.
func TestRewriteUnderResize10(t *testing.T) {
	for _, pinned := range []int{0, 2} {
		t.Run(fmt.Sprintf("pinned=%d", pinned), func(t *testing.T) {
			rewriteTorture10(t, rewriteRun10{keyLen: 0, valLen: 150, keys: 6, pinned: pinned, resize: true, d: 150 * time.Millisecond})
		})
	}
}

// TestRewriteBoundary10 checks which Sets overwrite in place: the same
// length for an entry of at most lockedCopyMax bytes (the empty value
// included) keeps the entry's id and moves its generation on; one byte more
// in all, or another length, takes the long way (a new id). Every Get then
// sees the last value, and the figures stay exact.
func TestRewriteBoundary10(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k := []byte("boundary-key")
	sets := 0
	for _, tc := range []struct {
		n       int // value length
		inPlace bool
	}{
		{0, false}, {0, true}, {lockedCopyMax - len(k), false}, {lockedCopyMax - len(k), true},
		{lockedCopyMax - len(k) + 1, false}, {lockedCopyMax - len(k) + 1, false}, {5, false}, {5, true},
	} {
		id, w := uint32(noID), uint64(0)
		if c.Has(k) {
			id, w = entryOf7(t, c, k)
		}
		adds := indexAdds10(c)
		v := bytes.Repeat([]byte{byte(sets + 1)}, tc.n)
		setT(t, c, k, v)
		sets++
		// The long way replaces the index slot (adds counts it; its new
		// entry may reuse the old id, at the next generation); a rewrite
		// leaves the index alone.
		id2, w2 := entryOf7(t, c, k)
		inPlace := indexAdds10(c) == adds
		if inPlace != tc.inPlace || inPlace && (id2 != id || genOf(w2) != genOf(w)+1) {
			t.Fatalf("set %d (value %d bytes): id %d gen %d -> id %d gen %d; in place %v, want %v",
				sets, tc.n, id, genOf(w), id2, genOf(w2), inPlace, tc.inPlace)
		}
		got, ok := c.Get(nil, k)
		if !ok || !bytes.Equal(got, v) {
			t.Fatalf("set %d (value %d bytes): Get %v, %d bytes", sets, tc.n, ok, len(got))
		}
		st := c.Stats()
		if st.Sets != sets || st.Entries != 1 || st.BytesUsed != int(c.weight(uint64(len(k)+tc.n))) || st.Evictions != 0 {
			t.Fatalf("set %d (value %d bytes): %+v", sets, tc.n, st)
		}
	}
	// A rewrite counts as a Set, not as a hit or a miss.
	before := c.Stats()
	setT(t, c, k, []byte("abcde"))
	if st := c.Stats(); st.Hits != before.Hits || st.Misses != before.Misses || st.Sets != before.Sets+1 {
		t.Fatalf("a rewrite changed hits or misses: %+v -> %+v", before, st)
	}
}

// indexAdds10 returns the inserts and replaces c's index has seen.
func indexAdds10(c *Cache) uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur().idx.adds
}

// TestRewriteLastGenerations10 puts an entry's generation near the last
// (genMask, which only freeing may give, and which retires the id): a
// rewrite from genMask-2 goes in place to genMask-1; from genMask-1 it must
// not (it would give genMask to a live entry, or wrap to 0 and let a stale
// reader's word match again), so the Set takes the long way, and the freed
// id is retired for good. Readers' validation by the word and stale own
// Handles must keep working across both.
func TestRewriteLastGenerations10(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k := []byte("old-key")
	setT(t, c, k, []byte("value-0"))
	id, w := entryOf7(t, c, k)
	c.mu.Lock()
	e := c.cur().entry(id)
	atomic.StoreUint64(&e.word, w&^genMask|(genMask-2))
	c.mu.Unlock()
	_, h, err := c.Pin(k) // an own Handle at generation genMask-2
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	setT(t, c, k, []byte("value-1"))
	id1, w1 := entryOf7(t, c, k)
	if id1 != id || genOf(w1) != genMask-1 {
		t.Fatalf("rewrite from generation genMask-2: id %d -> %d, generation %#x", id, id1, genOf(w1))
	}
	if err := h.Release(); !errors.Is(err, ErrReleased) {
		t.Fatalf("stale own Handle after a rewrite: %v", err)
	}
	retired := c.cur().retired
	setT(t, c, k, []byte("value-2"))
	id2, w2 := entryOf7(t, c, k)
	if id2 == id || genOf(w2) == genMask || genOf(w2) == 0 && id2 == id {
		t.Fatalf("rewrite from generation genMask-1: id %d -> %d, generation %#x", id, id2, genOf(w2))
	}
	c.mu.RLock()
	oldGen, nowRetired := genOf(c.cur().entry(id).word), c.cur().retired
	c.mu.RUnlock()
	if oldGen != genMask || nowRetired != retired+1 {
		t.Fatalf("the old id's generation %#x, %d ids retired (was %d): want it retired at the last", oldGen, nowRetired, retired)
	}
	if got, ok := c.Get(nil, k); !ok || string(got) != "value-2" {
		t.Fatalf("Get: %q, %v", got, ok)
	}
	if err := h.Release(); !errors.Is(err, ErrReleased) {
		t.Fatalf("stale own Handle after the long way: %v", err)
	}
	if st := c.Stats(); st.Entries != 1 || st.Sets != 3 || st.BytesUsed != int(c.weight(uint64(len(k)+7))) {
		t.Fatalf("stats: %+v", st)
	}
	c.mu.Lock()
	err = c.verify()
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRewriteSharedPoolPressure10 rewrites a cache's keys while another
// user of its pool commits until full, so the pool's reclaimer evicts the
// cache's entries meanwhile, and readers read. A miss is then allowed, but
// never a torn value or an old version after a newer one, and the writer's
// own read after a successful Set sees its value or a miss, never an
// older one. At the end the pool holds exactly what the cache and the
// other user hold.
func TestRewriteSharedPoolPressure10(t *testing.T) {
	p, err := pool.New(128<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := newT(t, 96<<10, &Options{Pool: p})
	const keys, vlen = 64, 500
	for i := range keys {
		setT(t, c, key(i), value(i, 0, vlen))
	}
	var stop atomic.Bool
	var bad, sets, reclaims atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	report := func(format string, args ...any) {
		bad.Add(1)
		once.Do(func() { t.Errorf(format, args...) })
	}
	wg.Add(1)
	go func() { // the other user: fills the pool, then gives back
		defer wg.Done()
		var refs []pool.Ref
		chunk := make([]byte, 4<<10)
		for !stop.Load() {
			ref, err := p.Commit(chunk)
			if err == nil {
				refs = append(refs, ref)
				continue
			}
			reclaims.Add(1)
			for _, r := range refs {
				if err := p.Release(r); err != nil {
					report("release: %v", err)
				}
			}
			refs = refs[:0]
		}
		for _, r := range refs {
			_ = p.Release(r)
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		var buf []byte
		for n := 1; !stop.Load(); n++ {
			i := n % keys
			v := value(i, n, vlen)
			if err := c.Set(key(i), v); err != nil {
				if !errors.Is(err, ErrFull) && !errors.Is(err, ErrRejected) {
					report("set: %v", err)
				}
				continue
			}
			sets.Add(1)
			var ok bool
			if buf, ok = c.Get(buf[:0], key(i)); ok && !bytes.Equal(buf, v) {
				report("Get right after Set of %d.%d: version %d", i, n, version10(buf))
			}
		}
	}()
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := make([]int, keys)
			var buf []byte
			for n := 0; !stop.Load(); n++ {
				i := (n*3 + g) % keys
				var ok bool
				if g == 0 {
					buf, ok = c.Get(buf[:0], key(i))
				} else if v, h, err := c.Pin(key(i)); err == nil {
					buf, ok = append(buf[:0], v...), true
					if !bytes.Equal(v, buf) {
						report("pinned view changed")
					}
					_ = h.Release()
				}
				if !ok {
					continue
				}
				switch {
				case !valid(buf, i) || len(buf) != vlen:
					report("key %d: torn or foreign value", i)
				case version10(buf) < last[i]:
					report("key %d: version %d after %d", i, version10(buf), last[i])
				default:
					last[i] = version10(buf)
				}
			}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d bad reads", bad.Load())
	}
	if sets.Load() == 0 {
		t.Fatal("no Set succeeded")
	}
	st := c.Stats()
	if ps := p.Stats(); ps.Used != st.BytesUsed || st.BytesPinned != 0 || st.Entries != c.Len() {
		t.Fatalf("pool uses %d bytes, the cache %+v", ps.Used, st)
	}
	c.mu.Lock()
	err = c.verify()
	c.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d sets, %d times the pool was full, %d evictions", sets.Load(), reclaims.Load(), st.Evictions)
}

// TestRewriteCloseRace10 closes a cache while same-length Sets and readers
// run: every call after Close must fail cleanly (ErrClosed, a miss), and
// nothing may fault or hang.
func TestRewriteCloseRace10(t *testing.T) {
	for round := range 20 {
		c, err := New(64<<10, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			setT(t, c, key(i), value(i, 0, 100))
		}
		var wg sync.WaitGroup
		var bad atomic.Int64
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for n := 1; ; n++ {
					i := (n + g) % 8
					if g == 0 {
						if err := c.Set(key(i), value(i, n, 100)); errors.Is(err, ErrClosed) {
							return
						} else if err != nil {
							bad.Add(1)
						}
						continue
					}
					var ok bool
					if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
						bad.Add(1)
					}
					if !ok && n > 100 {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(round%4) * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("round %d: %d bad results", round, bad.Load())
		}
		if err := c.Set(key(0), value(0, 1, 100)); !errors.Is(err, ErrClosed) {
			t.Fatalf("round %d: Set after Close: %v", round, err)
		}
	}
}

// TestIndexWriteSeqlock10 has one writer change a slot's key and location
// together (location = ^key) while readers read them as Get's fast path
// does: a reader that saw the same even sequence number before and after
// must never see a key with another key's location. It fails if write
// stores the slot without first making the number odd (or the compiler
// drops that store as dead).
func TestIndexWriteSeqlock10(t *testing.T) {
	var b bucket
	const writes = 300000
	var torn, validated atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				s := loadSeq(&b)
				k, l := loadKey(&b, 1), loadLoc(&b, 1)
				fence.Load()
				if s&1 == 0 && loadSeq(&b) == s && k != 0 {
					validated.Add(1)
					if l != ^k {
						torn.Add(1)
					}
				}
			}
		}()
	}
	for i := uint64(1); i <= writes; i++ {
		write(&b, 1, i, ^i)
	}
	stop.Store(true)
	wg.Wait()
	if n := torn.Load(); n != 0 {
		t.Fatalf("%d of %d validated reads saw a key with another key's location", n, validated.Load())
	}
	if b.seq != 2*writes || b.slots[1].key != writes || b.slots[1].loc != ^uint64(writes) {
		t.Fatalf("after %d writes: seq %d, slot %+v", writes, b.seq, b.slots[1])
	}
}
