// Tests of Set's in-place rewrite: a Set of a key the cache holds, unpinned,
// with a value of the same length, overwrites the value where it lies.

package cache

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRewriteInPlace checks that a same-length Set keeps the entry (its id,
// the next generation, its place in the policy), counts as a Set and evicts
// nothing; that a Set of another length takes the long way; and that Get
// sees each value.
func TestRewriteInPlace(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	setT(t, c, k, []byte("value-1"))
	id, w := entryOf7(t, c, k)
	c.mu.Lock()
	c.cur().pol.move(protected, id+numLists) // as if it had earned its place
	c.mu.Unlock()
	setT(t, c, k, []byte("value-2"))
	id2, w2 := entryOf7(t, c, k)
	if id2 != id || genOf(w2) != genOf(w)+1 || stateOf(w2) != stateLive || pinsOf(w2) != 0 {
		t.Fatalf("same length: id %d word %#x -> id %d word %#x, want the same id, next generation, live", id, w, id2, w2)
	}
	c.mu.RLock()
	l := listOf(&c.cur().pol.ents[id+numLists])
	c.mu.RUnlock()
	if l != protected {
		t.Fatalf("a rewritten entry left protected for list %d", l)
	}
	if got, _ := c.Get(nil, k); string(got) != "value-2" {
		t.Fatalf("Get after rewrite: %q", got)
	}
	setT(t, c, k, []byte("value-three"))
	if got, _ := c.Get(nil, k); string(got) != "value-three" {
		t.Fatalf("Get after a longer value: %q", got)
	}
	st := c.Stats()
	if st.Sets != 3 || st.Entries != 1 || st.Evictions != 0 || st.BytesUsed != int(c.weight(uint64(len(k)+len("value-three")))) {
		t.Fatalf("stats after three Sets of one key: %+v", st)
	}
}

// TestRewriteSparesPins checks that a same-length Set of a pinned key
// leaves the pinned view unchanged (the old value stays for its pins) and
// stores the new value for everyone else.
func TestRewriteSparesPins(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	setT(t, c, k, []byte("old-value"))
	v, h, err := c.Pin(k)
	if err != nil {
		t.Fatal(err)
	}
	setT(t, c, k, []byte("new-value"))
	if string(v) != "old-value" {
		t.Fatalf("pinned view changed to %q", v)
	}
	if got, _ := c.Get(nil, k); string(got) != "new-value" {
		t.Fatalf("Get: %q", got)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.BytesUsed != int(c.weight(uint64(len(k)+len("new-value")))) || st.BytesPinned != 0 {
		t.Fatalf("after release: %+v", st)
	}
}

// TestRewriteRefusesStaleHandle checks that an own Handle released before a
// rewrite stays released after it.
func TestRewriteRefusesStaleHandle(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k := []byte("k")
	setT(t, c, k, []byte("value-1"))
	_, h, err := c.Pin(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	setT(t, c, k, []byte("value-2"))
	if err := h.Release(); err == nil {
		t.Fatal("a Handle released before a rewrite released again")
	}
}

// TestRewriteAllocatesNothing checks that a same-length Set allocates nothing.
func TestRewriteAllocatesNothing(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k, v := []byte("key"), bytes.Repeat([]byte{7}, 100)
	setT(t, c, k, v)
	if n := testing.AllocsPerRun(1000, func() { _ = c.Set(k, v) }); n != 0 {
		t.Fatalf("a rewrite allocates %.1f times", n)
	}
}

// TestRewriteUnderReaders has writers rewrite (and now and then resize,
// delete and re-set) a few keys while readers Get and Pin them: every value
// read must be whole and the key's, and a pinned view must not change until
// its release.
func TestRewriteUnderReaders(t *testing.T) {
	c := newT(t, 64<<10, nil)
	const keys = 8
	for i := range keys {
		setT(t, c, key(i), value(i, 0, 200))
	}
	var stop atomic.Bool
	var bad, rewrites atomic.Int64
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; !stop.Load(); n++ {
				i := (n + g) % keys
				switch {
				case n%97 == 0:
					_, _ = c.Delete(key(i))
				case n%53 == 0:
					_ = c.Set(key(i), value(i, n, 300))
				default:
					if c.Set(key(i), value(i, n, 200)) == nil {
						rewrites.Add(1)
					}
				}
			}
		}()
	}
	for g := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf, snap []byte
			for n := 0; !stop.Load(); n++ {
				i := (n * (g + 1)) % keys
				if g == 0 {
					var ok bool
					if buf, ok = c.Get(buf[:0], key(i)); ok && !valid(buf, i) {
						bad.Add(1)
					}
					continue
				}
				v, h, err := c.Pin(key(i))
				if err != nil {
					continue
				}
				snap = append(snap[:0], v...)
				if !valid(snap, i) {
					bad.Add(1)
				}
				for range 50 {
					if !bytes.Equal(v, snap) {
						bad.Add(1)
						break
					}
				}
				if err := h.Release(); err != nil {
					bad.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d torn, foreign or changing values read", bad.Load())
	}
	if rewrites.Load() == 0 {
		t.Fatal("no Set succeeded")
	}
}
