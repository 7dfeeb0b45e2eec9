package cache

// Adversarial tests of the index of cache-line buckets and of Get's path
// from a slot's location straight to the key and value (validated by the
// bucket's sequence number, the table header and the moves word), and of
// the CLOCK counters packed 32 to a word in a table of their own.
//
// White-box: TestIndexModel5 and TestIndexTombstonesAtTheEnd5 drive a
// store's index directly (clusters over the table's end, tombstones across
// bucket boundaries, rehashes that grow, shrink and clear tombstones)
// against a model; checkIndex5 checks a quiet cache's whole table (counts,
// reachability, locations, no tombstone before an empty slot);
// TestCompactionRelocates5 checks the locations after compactions (pins
// out) and rebuilds; TestPackedCountersNoLostUpdates5 the packed counters.
//
// The stress tests here check linearizability per key, not just that a
// value is some value of its key: one writer owns each key and numbers its
// versions, records the version below which nothing may be read once a Set
// or Delete returned (a successful Set of v: v; a Delete, or a Set that
// failed with ErrFull or ErrRejected, which drop the old value: the last
// version begun plus one), and every value read must be its key's (checksum),
// of the length its version was written with, no older than that floor as
// loaded before the read began, and no newer than the last version begun as
// loaded after it. Keys come in every shape the index treats differently:
// short (inline hash), 255 bytes (the longest a location holds), 256 bytes
// (no location: readers go by the entry), and 16-byte keys that, before the
// hash seeded both its operands, all had one and the same 64-bit hash (see
// TestShortKeyHashIsSeeded), so that one probe sequence held many entries of
// one tag; they are ordinary keys now, and crowded probe sequences are
// FuzzIndex's and TestIndexModel5's to test. Values range from 12 bytes to
// 70 000: up to copyCheckMax (the fast path), up to 64 KiB (a location, but
// the slow path), and beyond (no location).

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/pool"
)

// soak returns how long a stress runs: d, short in -short, or as long as
// OFFHEAP_SOAK says (a duration under 25s, such as 20s: within gives up at
// 30s), for a longer soak.
func soak(d, short time.Duration) time.Duration {
	if v := os.Getenv("OFFHEAP_SOAK"); v != "" {
		if s, err := time.ParseDuration(v); err == nil {
			return s
		}
	}
	if testing.Short() {
		return short
	}
	return d
}

// collidingKey returns a 16-byte key, distinct for each i, whose last 8
// bytes made the second operand of the hash's first multiplication zero
// when that operand was unseeded, so that every such key had one hash in
// every cache (see TestShortKeyHashIsSeeded); now they are ordinary keys.
func collidingKey(i int) []byte {
	k := make([]byte, 16)
	binary.LittleEndian.PutUint64(k, uint64(i)*0x9e3779b97f4a7c15+1)
	binary.LittleEndian.PutUint64(k[8:], mixB^16)
	return k
}

// key5 returns key i of the stress tests: see the file's comment.
func key5(i int) []byte {
	switch i % 5 {
	case 2: // the longest key a location holds
		k := bytes.Repeat([]byte{'L'}, 255)
		copy(k, strconv.Itoa(i)+"-")
		return k
	case 3: // the shortest it does not
		k := bytes.Repeat([]byte{'X'}, 256)
		copy(k, strconv.Itoa(i)+"-")
		return k
	case 4:
		return collidingKey(i)
	}
	return []byte("k5-" + strconv.Itoa(i))
}

// len5 returns the length of version ver of key i's value: mostly at most
// copyCheckMax (Get's fast path), at times more, up to 64 KiB and beyond.
func len5(i int, ver uint64, big bool) int {
	small := []int{12, 13, 40, 100, 255, 256, 1000, 4000, 4096}
	large := []int{4097, 9000, 65535, 65536, 70000}
	x := uint64(i)*31 + ver*7
	if big && x%5 == 0 {
		return large[x/5%uint64(len(large))]
	}
	return small[x%uint64(len(small))]
}

// linKeys is the per-key record of a linearizability stress.
type linKeys struct {
	keys   [][]byte
	big    bool
	floor  []atomic.Uint64 // versions below it must not be read any more
	begun  []atomic.Uint64 // the last version a Set of it began
	stored []atomic.Uint64 // the version the cache holds, if it holds any (0: none)
	ops    []atomic.Uint64 // odd while the owner's Set or Delete of it runs
}

func newLinKeys(n int, big bool) *linKeys {
	s := &linKeys{keys: make([][]byte, n), big: big, floor: make([]atomic.Uint64, n), begun: make([]atomic.Uint64, n), stored: make([]atomic.Uint64, n), ops: make([]atomic.Uint64, n)}
	for i := range s.keys {
		s.keys[i] = key5(i)
	}
	return s
}

// check judges value v read for key i by a read that began when the floor
// was lo and ended before the last version begun was hi.
func (s *linKeys) check(what string, i int, v []byte, lo, hi uint64) error {
	if !valid(v, i) {
		return fmt.Errorf("%s of key %d: %d bytes that are not a value of the key: % x", what, i, len(v), v[:min(len(v), 16)])
	}
	ver := uint64(binary.LittleEndian.Uint32(v[4:]))
	switch {
	case ver < lo:
		return fmt.Errorf("%s of key %d: version %d, but version %d (or a Delete after it) had returned before the read began", what, i, ver, lo)
	case ver > hi:
		return fmt.Errorf("%s of key %d: version %d, never stored (last begun %d)", what, i, ver, hi)
	case len(v) != len5(i, ver, s.big):
		return fmt.Errorf("%s of key %d: version %d of %d bytes, stored with %d", what, i, ver, len(v), len5(i, ver, s.big))
	}
	return nil
}

// set stores the next version of key i (its owner's call) and moves the
// floor as the result says.
func (s *linKeys) set(c *Cache, i int) error {
	s.ops[i].Add(1)
	defer s.ops[i].Add(1)
	ver := s.begun[i].Add(1)
	err := c.Set(s.keys[i], value(i, int(ver), len5(i, ver, s.big)))
	switch {
	case err == nil:
		s.floor[i].Store(ver)
		s.stored[i].Store(ver)
	case errors.Is(err, ErrFull), errors.Is(err, ErrRejected):
		s.floor[i].Store(ver + 1) // the old value is gone too
		s.stored[i].Store(0)
	case errors.Is(err, ErrTooLarge): // nothing changed
	default:
		return fmt.Errorf("set key %d: %w", i, err)
	}
	return nil
}

// del deletes key i (its owner's call).
func (s *linKeys) del(c *Cache, i int) error {
	s.ops[i].Add(1)
	defer s.ops[i].Add(1)
	if _, err := c.Delete(s.keys[i]); err != nil {
		return fmt.Errorf("delete key %d: %w", i, err)
	}
	s.floor[i].Store(s.begun[i].Load() + 1)
	s.stored[i].Store(0)
	return nil
}

// get reads key i and checks what it read.
func (s *linKeys) get(c *Cache, i int, buf []byte) ([]byte, error) {
	lo := s.floor[i].Load()
	v, ok := c.Get(buf[:0], s.keys[i])
	hi := s.begun[i].Load()
	if ok {
		return v, s.check("get", i, v, lo, hi)
	}
	return v, nil
}

// has checks Has of key i: true is wrong if the key was deleted (or a Set
// of it failed) before Has began and no Set of it ran until Has returned.
func (s *linKeys) has(c *Cache, i int) error {
	o0, s0 := s.ops[i].Load(), s.stored[i].Load()
	ok := c.Has(s.keys[i])
	if o1 := s.ops[i].Load(); ok && s0 == 0 && o0 == o1 && o0%2 == 0 {
		return fmt.Errorf("has of key %d: true, but it was deleted (or its Set failed, or it was never set) and nothing ran on it since", i)
	}
	return nil
}

// linConfig is one linearizability stress.
type linConfig struct {
	budget, maxBudget int
	poolBytes         int  // > 0: a shared pool of this capacity
	keys, writers     int  // each writer owns keys i%writers == w
	readers           int  //
	big               bool // values beyond copyCheckMax and 64 KiB too
	resize            bool // a resizer shrinks and grows the cache, with and without a pin out
	scribble          bool // (shared pool) another user reserves pool space and fills it with forged entries
	pinners           int
	maxEntries        int // Options.MaxEntries (a pool of its own only)
}

// linStress runs cfg and checks, besides every read, the invariants, the
// index (see checkIndex5), and the accounting once all is quiet.
func linStress(t *testing.T, cfg linConfig) {
	// A P for every goroutine: readers never block, and a writer woken
	// from the lock would otherwise wait for one to be preempted.
	procs := cfg.writers + cfg.readers + cfg.pinners + 2
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	s := newLinKeys(cfg.keys, cfg.big)
	withCache := func(f func(c *Cache, p *pool.Pool)) { stressThenClose(t, cfg.budget, cfg.maxBudget, cfg.poolBytes, f) }
	if cfg.maxEntries > 0 {
		withCache = func(f func(c *Cache, p *pool.Pool)) {
			c, err := New(cfg.budget, &Options{MaxBudget: cfg.maxBudget, MaxEntries: cfg.maxEntries})
			if err != nil {
				t.Fatal(err)
			}
			f(c, nil)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	withCache(func(c *Cache, p *pool.Pool) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		run := func(f func() error) {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- f() }()
		}
		for w := range cfg.writers {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(w), 5))
				mine := (cfg.keys - w + cfg.writers - 1) / cfg.writers
				for !stop.Load() {
					i := w + r.IntN(mine)*cfg.writers
					var err error
					switch op := r.IntN(10); {
					case op < 5:
						err = s.set(c, i)
					case op < 7:
						err = s.del(c, i)
					case op < 9: // the same key out and in again: its id and offset come back
						if err = s.del(c, i); err == nil {
							err = s.set(c, i)
						}
					default:
						if err = s.set(c, i); err == nil {
							err = s.set(c, i)
						}
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
		}
		for g := range cfg.readers {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(g), 6))
				var buf []byte
				for n := 0; !stop.Load(); n++ {
					i := r.IntN(cfg.keys)
					if n%256 == 0 {
						// Off the CPU a moment: on a machine of few cores
						// spinning readers would starve the writers.
						time.Sleep(20 * time.Microsecond)
					}
					if n%8 == 0 { // the same key again and again, as a writer changes it
						for range 16 {
							var err error
							if buf, err = s.get(c, i, buf); err != nil {
								return err
							}
						}
						continue
					}
					if n%8 == 1 {
						if err := s.has(c, i); err != nil {
							return err
						}
						continue
					}
					var err error
					if buf, err = s.get(c, i, buf); err != nil {
						return err
					}
				}
				return nil
			})
		}
		for g := range cfg.pinners {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(g), 7))
				for !stop.Load() {
					i := r.IntN(cfg.keys)
					lo := s.floor[i].Load()
					v, h, err := c.Pin(s.keys[i])
					hi := s.begun[i].Load()
					if err == ErrNotFound {
						continue
					}
					if err != nil {
						return fmt.Errorf("pin key %d: %w", i, err)
					}
					if err := s.check("pin", i, v, lo, hi); err != nil {
						_ = h.Release()
						return err
					}
					was := bytes.Clone(v)
					time.Sleep(time.Duration(r.IntN(200)) * time.Microsecond)
					if !bytes.Equal(v, was) {
						_ = h.Release()
						return fmt.Errorf("pinned view of key %d changed", i)
					}
					if err := h.Release(); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if cfg.resize {
			run(func() error {
				r := rand.New(rand.NewPCG(8, 8))
				sizes := []int{cfg.budget / 8, cfg.budget / 3, cfg.budget, cfg.maxBudget, 80 << 10}
				for n := 0; !stop.Load(); n++ {
					size := sizes[r.IntN(len(sizes))]
					var hd Handle
					pinned := false
					if n%2 == 0 { // a pin out: the shrink compacts in place instead of rebuilding
						for range 8 {
							if _, h, err := c.Pin(s.keys[r.IntN(cfg.keys)]); err == nil {
								hd, pinned = h, true
								break
							}
						}
					}
					err := c.Resize(size)
					if pinned {
						if err := hd.Release(); err != nil {
							return err
						}
					}
					if err != nil && !errors.Is(err, ErrFull) {
						return fmt.Errorf("resize %d: %w", size, err)
					}
					time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
				}
				return nil
			})
		}
		if cfg.scribble && p != nil {
			run(func() error { return scribble(s, p, &stop) })
		}
		dur := soak(time.Second, 200*time.Millisecond)
		within(t, "linearizability stress", func() { stopAfter(t, dur, &stop, &wg, errs) })
		if t.Failed() {
			return
		}
		st := c.Stats()
		t.Logf("hits %d, misses %d, sets %d, rejections %d, evictions %d, deletes %d, compactions %d, rebuilds %d",
			st.Hits, st.Misses, st.Sets, st.Rejections, st.Evictions, st.Deletes, st.Compactions, st.Rebuilds)
		verifyT(t, c)
		checkIndex5(t, c)
		quiet5(t, c, s, p)
	})
}

// scribble is another user of a shared pool: it reserves segments the size
// of the cache's entries (so it takes the very space the cache's evictions
// free, and asks the cache to reclaim when the pool is full) and fills them
// as the cache would fill an entry of the key, with a version never
// stored; a Get that read a freed segment would return it.
func scribble(s *linKeys, p *pool.Pool, stop *atomic.Bool) error {
	r := rand.New(rand.NewPCG(9, 9))
	var held []pool.Ref
	drop := func() error {
		_ = p.Unlatch(held[0])
		if err := p.Release(held[0]); err != nil {
			return fmt.Errorf("scribbler release: %w", err)
		}
		held = held[1:]
		return nil
	}
	defer func() {
		for _, ref := range held {
			_ = p.Unlatch(ref)
			_ = p.Release(ref)
		}
	}()
	for !stop.Load() {
		i := r.IntN(len(s.keys))
		k := s.keys[i]
		v := value(i, 1<<31-1, len5(i, uint64(r.IntN(64)), s.big))
		ref, b, err := p.Reserve(len(k) + len(v))
		if err != nil {
			if errors.Is(err, pool.ErrFull) {
				if len(held) > 0 {
					if err := drop(); err != nil {
						return err
					}
				}
				runtime.Gosched()
				continue
			}
			return fmt.Errorf("scribbler reserve: %w", err)
		}
		copy(b[copy(b, k):], v)
		held = append(held, ref)
		if len(held) > 4 {
			if err := drop(); err != nil {
				return err
			}
		}
	}
	return nil
}

// quiet5 checks a quiet cache against the writers' records: a key read is
// at the version its last Set stored (none if deleted or failed since), and
// the entries read are exactly what Stats, the budget and the pool count.
func quiet5(t *testing.T, c *Cache, s *linKeys, p *pool.Pool) {
	t.Helper()
	var n, bytesUsed int
	for i, k := range s.keys {
		v, ok := c.Get(nil, k)
		if !ok {
			continue
		}
		if err := s.check("quiet get", i, v, s.floor[i].Load(), s.begun[i].Load()); err != nil {
			t.Error(err)
		} else if ver := uint64(binary.LittleEndian.Uint32(v[4:])); ver != s.stored[i].Load() {
			t.Errorf("quiet get of key %d: version %d, but the last Set to store one stored %d (0: a Delete or failed Set since)", i, ver, s.stored[i].Load())
		}
		if !c.Has(k) {
			t.Errorf("key %d: Get finds it, Has does not", i)
		}
		n++
		bytesUsed += int(c.weight(uint64(len(k) + len(v))))
	}
	st := c.Stats()
	if st.Entries != n || st.BytesUsed != bytesUsed || st.BytesUsed > st.Budget || st.Handles != 0 || st.BytesPinned != 0 {
		t.Errorf("stats %+v, but the cache holds %d entries of %d bytes", st, n, bytesUsed)
	}
	if p == nil {
		p = c.cur().p
	}
	if ps := p.Stats(); ps.Used != bytesUsed || ps.UsedSegments != n {
		t.Errorf("the pool holds %d segments of %d bytes, the cache %d entries of %d", ps.UsedSegments, ps.Used, n, bytesUsed)
	}
}

// checkIndex5 walks the whole table in use and checks what verify does not:
// every bucket's sequence number is even; the slots in use and the
// tombstones are those counted (insert's decision to rehash goes by the
// counts, and a table with no empty slot left would never end a probe);
// they fill at most 3/4 of the table; every slot in use names a distinct
// live entry under its hash, at its location, reachable from the entry's
// home without crossing an empty slot; and no tombstone lies just before an
// empty slot (remove clears those).
func checkIndex5(t *testing.T, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := indexErr5(c.cur(), nil); err != nil {
		t.Error(err)
	}
}

// indexErr5 is checkIndex5 on store s; if model is not nil, the index must
// hold exactly its ids, at their locations, and s's entries need not be
// live (the white-box test fills only their hashes).
func indexErr5(s *store, model map[uint32]uint64) error {
	x := &s.idx
	t, n := x.table(x.hdr.Load())
	var live, tombs uint64
	seen := map[uint32]bool{}
	total := n * bucketSlots
	for b := range n {
		bk := t.at(b)
		if seq := loadSeq(bk); seq&1 != 0 {
			return fmt.Errorf("bucket %d of %d: odd sequence number %d while nothing writes", b, n, seq)
		}
		for j := range bucketSlots {
			k, loc := loadKey(bk, j), loadLoc(bk, j)
			switch {
			case k == 0:
				if loc != 0 {
					return fmt.Errorf("bucket %d slot %d: empty with location %#x", b, j, loc)
				}
				continue
			case k == tombstone:
				tombs++
				if nb, nj := step(b, j, n, 1); loadKey(t.at(nb), nj) == 0 {
					return fmt.Errorf("bucket %d slot %d: a tombstone just before an empty slot", b, j)
				}
				continue
			case uint32(k) == 0:
				return fmt.Errorf("bucket %d slot %d: key word %#x, a tombstone with a tag", b, j, k)
			}
			live++
			id := idOf(k)
			if seen[id] {
				return fmt.Errorf("id %d in two slots", id)
			}
			seen[id] = true
			if uint64(id) >= s.ents.ready.Load() {
				return fmt.Errorf("bucket %d slot %d: id %d past the entries", b, j, id)
			}
			e := s.entry(id)
			if keyOf(e.hash, id) != k {
				return fmt.Errorf("bucket %d slot %d: key word %#x, entry %d has hash %#x", b, j, k, id, e.hash)
			}
			want := locOf(e.off, keyLen(e.lens), valLen(e.lens))
			if model != nil {
				l, ok := model[id]
				if !ok {
					return fmt.Errorf("bucket %d slot %d: id %d, which was removed", b, j, id)
				}
				want = l
			} else if stateOf(e.word) != stateLive {
				return fmt.Errorf("bucket %d slot %d: entry %d in state %d", b, j, id, stateOf(e.word))
			}
			if loc != want {
				return fmt.Errorf("bucket %d slot %d: entry %d located at %#x, not %#x", b, j, id, loc, want)
			}
			// Reachable: no empty slot from its home up to it.
			hb, hj := home(e.hash, n), 0
			for steps := uint64(0); hb != b || hj != j; steps++ {
				if loadKey(t.at(hb), hj) == 0 {
					return fmt.Errorf("entry %d at bucket %d slot %d: its probe from bucket %d ends at an empty slot (bucket %d slot %d)", id, b, j, home(e.hash, n), hb, hj)
				}
				if steps > total {
					return fmt.Errorf("entry %d: not found from its home", id)
				}
				hb, hj = step(hb, hj, n, 1)
			}
		}
	}
	switch {
	case live != x.live || tombs != x.tombs:
		return fmt.Errorf("the table holds %d entries and %d tombstones, counted %d and %d", live, tombs, x.live, x.tombs)
	case (live+tombs)*4 > total*3:
		return fmt.Errorf("%d entries and %d tombstones in %d slots: over 3/4", live, tombs, total)
	case model != nil && len(model) != int(live):
		return fmt.Errorf("the table holds %d entries, the model %d", live, len(model))
	}
	return nil
}

// TestLinearizableOwned: writers replace and delete keys of every shape
// with values of changing lengths while readers Get them in loops and
// pinners pin them; a small cache, so many evictions.
func TestLinearizableOwned(t *testing.T) {
	linStress(t, linConfig{budget: 256 << 10, maxBudget: 1 << 20, keys: 60, writers: 3, readers: 3, pinners: 1, big: true})
}

// TestLinearizableResized adds a resizer that shrinks (rebuilding, or with a
// pin out compacting in place, which relocates every moved entry's slot and
// may shrink the index) and grows the cache.
func TestLinearizableResized(t *testing.T) {
	linStress(t, linConfig{budget: 256 << 10, maxBudget: 1 << 20, keys: 60, writers: 2, readers: 3, pinners: 1, big: true, resize: true})
}

// TestLinearizableTiny: a cache of a few small entries, evicting on almost
// every Set, and short values only (all on Get's fast path).
func TestLinearizableTiny(t *testing.T) {
	linStress(t, linConfig{budget: 6 << 10, maxBudget: 64 << 10, keys: 40, writers: 2, readers: 4})
}

// TestLinearizableTinyResized is the tiny cache shrunk and grown all the
// while, with pins out half the time.
func TestLinearizableTinyResized(t *testing.T) {
	linStress(t, linConfig{budget: 12 << 10, maxBudget: 256 << 10, keys: 40, writers: 2, readers: 3, pinners: 1, resize: true})
}

// TestLinearizableSharedScribbled: on a shared pool another user keeps
// reserving the space the cache's evictions and deletions free (asking it
// to reclaim when the pool is full) and writes forged entries there.
func TestLinearizableSharedScribbled(t *testing.T) {
	linStress(t, linConfig{budget: 256 << 10, maxBudget: 256 << 10, poolBytes: 200 << 10, keys: 60, writers: 2, readers: 3, pinners: 1, big: true, scribble: true})
}

// TestLinearizableSharedScribbledTiny: the same with short values in a pool
// that holds only a few of them.
func TestLinearizableSharedScribbledTiny(t *testing.T) {
	linStress(t, linConfig{budget: 16 << 10, maxBudget: 16 << 10, poolBytes: 8 << 10, keys: 30, writers: 2, readers: 3, scribble: true})
}

// TestLinearizableMaxEntries: the entry count, not the budget, makes room:
// a Set at MaxEntries evicts (in insert, after it took the key's old entry
// out) for an id.
func TestLinearizableMaxEntries(t *testing.T) {
	linStress(t, linConfig{budget: 1 << 20, maxBudget: 1 << 20, maxEntries: 7, keys: 40, writers: 2, readers: 3, pinners: 1})
}

// TestSameKeyOutAndIn5 deletes and sets one key in a tight loop with values
// of one length (so the entry's id and the segment's offset keep coming
// back, and so does the slot) while readers Get it: none may read a version
// older than the last one stored before its Get began.
func TestSameKeyOutAndIn5(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, k := range [][]byte{[]byte("k"), key5(2), collidingKey(7)} {
		c := newT(t, 64<<10, nil)
		var floor, begun atomic.Uint64
		var stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for !stop.Load() {
					lo := floor.Load()
					v, ok := c.Get(buf[:0], k)
					hi := begun.Load()
					if ok {
						ver := uint64(binary.LittleEndian.Uint32(v[4:]))
						if !valid(v, 0) || ver < lo || ver > hi || len(v) != 100 {
							errs <- fmt.Errorf("key of %d bytes: read version %d (%d bytes, valid %v), floor %d, last begun %d", len(k), ver, len(v), valid(v, 0), lo, hi)
							return
						}
					}
					buf = v
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				ver := begun.Add(1)
				if err := c.Set(k, value(0, int(ver), 100)); err != nil {
					errs <- err
					return
				}
				floor.Store(ver)
				if _, err := c.Delete(k); err != nil {
					errs <- err
					return
				}
				floor.Store(ver + 1)
			}
		}()
		dur := soak(400*time.Millisecond, 100*time.Millisecond)
		stopAfter(t, dur, &stop, &wg, errs)
		verifyT(t, c)
		checkIndex5(t, c)
	}
}

// TestStableKeysAlwaysHit5 sets stable keys once and never touches them,
// with values of every length up to copyCheckMax (Get's and Pin's fast
// paths) and past it, in a cache large enough that nothing is evicted,
// while churners set and delete other keys (their own, some sharing the
// stable colliding keys' hash, and some deleted and set again, so
// tombstones pile up in the stable keys' probe sequences, the index grows
// and rehashes to clear them, remove clears tombstones backwards across
// buckets, and ids and offsets come back), and a resizer rebuilds and
// compacts (pins out) the cache, shrinking the index. Every Get, Has and
// Pin of a stable key, and every pin held a while, must find it with its
// value: a miss would mean a probe stopped short of it.
func TestStableKeysAlwaysHit5(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(5))
	const stable = 150
	c := newT(t, 8<<20, &Options{MaxBudget: 16 << 20})
	skey := func(i int) []byte {
		if i%3 == 0 {
			return collidingKey(i)
		}
		return key5(i)
	}
	slen := func(i int) int { return []int{12, 100, 4096, 4097, 65536, 50 + i}[i%6] }
	for i := range stable {
		setT(t, c, skey(i), value(i, 1, slen(i)))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 11))
			base := 1_000_000 * (g + 1)
			k := func(i int) []byte {
				if i%4 == 0 {
					return collidingKey(base + i)
				}
				return key5(base + i)
			}
			for round := 0; !stop.Load(); round++ {
				// Up to a few thousand in, then all out: the live count
				// crosses the index's thresholds both ways.
				most := 3000
				if slow {
					most = 300
				}
				n := 1 + r.IntN(most)
				for i := range n {
					if err := c.Set(k(i), value(base+i, round, 12+i%40)); err != nil {
						errs <- fmt.Errorf("churn set: %w", err)
						return
					}
					if g == 1 && i%3 == 0 { // out and in again
						if _, err := c.Delete(k(i)); err != nil {
							errs <- err
							return
						}
						if err := c.Set(k(i), value(base+i, round, 12+r.IntN(300))); err != nil {
							errs <- err
							return
						}
					}
				}
				for _, i := range r.Perm(n) {
					if _, err := c.Delete(k(i)); err != nil {
						errs <- fmt.Errorf("churn delete: %w", err)
						return
					}
				}
			}
		}()
	}
	for g := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 12))
			var buf []byte
			for n := 0; !stop.Load(); n++ {
				i := r.IntN(stable)
				var ok bool
				switch n % 16 {
				case 0:
					ok = c.Has(skey(i))
				case 1:
					v, h, err := c.Pin(skey(i))
					if ok = err == nil; ok {
						if !valid(v, i) || len(v) != slen(i) {
							errs <- fmt.Errorf("pinned stable key %d: bad value", i)
						}
						_ = h.Release()
					} else if err != ErrNotFound {
						errs <- fmt.Errorf("pin stable key %d: %w", i, err)
						return
					}
				default:
					buf, ok = c.Get(buf[:0], skey(i))
					if ok && (!valid(buf, i) || len(buf) != slen(i)) {
						errs <- fmt.Errorf("stable key %d: bad value", i)
						return
					}
				}
				if !ok {
					errs <- fmt.Errorf("stable key %d (%d bytes, value %d) missed (op %d)", i, len(skey(i)), slen(i), n%16)
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // pins held a while, a few at once
		defer wg.Done()
		r := rand.New(rand.NewPCG(0, 14))
		var hs []Handle
		defer func() {
			for _, h := range hs {
				_ = h.Release()
			}
		}()
		for n := 0; !stop.Load(); n++ {
			i := r.IntN(stable)
			v, hd, err := c.Pin(skey(i))
			if err != nil {
				errs <- fmt.Errorf("pin of stable key %d (%d bytes, value %d): %w", i, len(skey(i)), slen(i), err)
				return
			}
			if !valid(v, i) || len(v) != slen(i) {
				_ = hd.Release()
				errs <- fmt.Errorf("pinned stable key %d: bad value", i)
				return
			}
			hs = append(hs, hd)
			if len(hs) > 3 || n%7 == 0 {
				for _, h := range hs {
					if err := h.Release(); err != nil {
						errs <- err
						return
					}
				}
				hs = hs[:0]
			}
		}
	}()
	resizeWithPins(c, &wg, &stop, errs, 13, []int{6 << 20, 8 << 20, 16 << 20}, 3000, func(r *rand.Rand) []byte { return skey(r.IntN(stable)) })
	dur := soak(1500*time.Millisecond, 300*time.Millisecond)
	within(t, "stable keys", func() { stopAfter(t, dur, &stop, &wg, errs) })
	st := c.Stats()
	if st.Evictions != 0 {
		t.Fatalf("%d evictions: the test needs a larger cache", st.Evictions)
	}
	if st.Handles != 0 || st.BytesPinned != 0 || st.Entries != stable {
		t.Errorf("stats %+v", st)
	}
	t.Logf("rebuilds %d, compactions %d", st.Rebuilds, st.Compactions)
	verifyT(t, c)
	checkIndex5(t, c)
}

// TestIndexModel5 drives a store's index directly with hashes chosen to
// crowd its first and last buckets (so probes, and remove's backward walk,
// wrap around the table's end), to share one hash, or at random, through
// inserts, removes, replaces, relocations and rehashes (growing, shrinking
// and clearing tombstones), against a model; after every step the table
// must hold the model's ids at their locations, reachable, with its counts
// right (see indexErr5).
func TestIndexModel5(t *testing.T) {
	p, err := pool.New(1<<16, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const maxE = 2000
	steps := 8000
	if testing.Short() || slow {
		steps = 1500
	}
	for _, seed := range []uint64{1, 2, 3, 4} {
		r := rand.New(rand.NewPCG(seed, 14))
		s, err := newStore(p, maxE, 1<<16, "index model")
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		if err := s.ents.grow(maxE); err != nil {
			t.Fatal(err)
		}
		model := map[uint32]uint64{}
		var free []uint32
		for id := range uint32(maxE) {
			free = append(free, id)
		}
		newHash := func() uint64 {
			tag := uint64(r.Uint32()|1) << 32
			f := r.IntN(5)
			if seed == 4 && r.IntN(5) > 0 {
				f = 2 // a long cluster of one hash, piling up tombstones
			}
			switch f {
			case 0: // the last bucket, whatever the table's size
				return tag | uint64(^uint32(0)-uint32(r.IntN(1<<20)))
			case 1: // the first
				return tag | uint64(r.IntN(1<<20))
			case 2: // all one hash
				return 0x1234_5678_ffff_fff0
			}
			return r.Uint64()
		}
		limit := []int{100, 140, 400, 60}[seed-1] // around 3/4 of the smallest table, and more
		var wraps, maxTombs uint64
		ids := func() []uint32 {
			out := make([]uint32, 0, len(model))
			for id := range model {
				out = append(out, id)
			}
			return out
		}
		for step := range steps {
			op := r.IntN(100)
			switch {
			case op < 45 && len(model) < limit:
				id := free[len(free)-1]
				free = free[:len(free)-1]
				h := newHash()
				s.entry(id).hash = h
				loc := locOf(uint64(r.IntN(1<<30)), uint64(1+r.IntN(255)), uint64(r.IntN(1<<16)))
				if err := s.idx.insert(s, h, id, loc); err != nil {
					t.Fatal(err)
				}
				model[id] = loc
			case op < 85 && len(model) > 0:
				all := ids()
				id := all[r.IntN(len(all))]
				s.idx.remove(s.entry(id).hash, id)
				delete(model, id)
				free = append(free, id)
			case op < 92 && len(model) > 0: // replace: another id takes the slot
				all := ids()
				old := all[r.IntN(len(all))]
				id := free[len(free)-1]
				free = free[:len(free)-1]
				h := s.entry(old).hash
				s.entry(id).hash = h
				loc := locOf(uint64(r.IntN(1<<30)), 1, 1)
				s.idx.replace(h, old, id, loc)
				delete(model, old)
				free = append(free, old)
				model[id] = loc
			case op < 99 && len(model) > 0:
				all := ids()
				id := all[r.IntN(len(all))]
				loc := uint64(0)
				if r.IntN(2) == 0 {
					loc = locOf(uint64(r.IntN(1<<30)), 7, 7)
				}
				s.idx.relocate(s.entry(id).hash, id, loc)
				model[id] = loc
			case step%997 == 0:
				if err := s.idx.rehash(s, s.idx.live); err != nil { // as shrink does
					t.Fatal(err)
				}
			case step%991 == 0:
				if err := s.idx.rehash(s, 3*s.idx.live); err != nil {
					t.Fatal(err)
				}
			}
			if err := indexErr5(s, model); err != nil {
				t.Fatalf("seed %d, step %d (op %d): %v", seed, step, op, err)
			}
			maxTombs = max(maxTombs, s.idx.tombs)
			if tb, n := s.idx.table(s.idx.hdr.Load()); loadKey(tb.at(n-1), bucketSlots-1) != 0 && loadKey(tb.at(0), 0) != 0 {
				wraps++ // a cluster runs over the table's end
			}
			// A reader's probe finds every id, from its home, before an empty slot.
			tb, n := s.idx.table(s.idx.hdr.Load())
			for id, loc := range model {
				h := s.entry(id).hash
				if got, ok := probe5(tb, n, h, id); !ok || got != loc {
					t.Fatalf("seed %d, step %d: probe for id %d: %#x %v, want %#x", seed, step, id, got, ok, loc)
				}
			}
		}
		t.Logf("seed %d: %d rehashes, %d steps with a cluster over the end, at most %d tombstones", seed, s.idx.hdr.Load()>>(hdrHalfShift+1), wraps, maxTombs)
	}
}

// probe5 is Get's probe for id: the location in its slot, or false at an
// empty slot or after the whole table.
func probe5(t *offTable[bucket], n, h uint64, id uint32) (uint64, bool) {
	want := keyOf(h, id)
	for b, left := home(h, n), n; left > 0; b, left = next(b, n), left-1 {
		bk := t.at(b)
		for j := range bucketSlots {
			switch k := loadKey(bk, j); k {
			case 0:
				return 0, false
			case want:
				return loadLoc(bk, j), true
			}
		}
	}
	return 0, false
}

// TestShortKeyHashIsSeeded: keys of up to 16 bytes are hashed by
// mix(a^mixA^seed0, b^mixB^len^seed1). With the second operand unseeded (as
// before), a key whose last 8 bytes are mixB^len made it zero, so the
// product was zero and the hash the same constant for every such key, in
// every cache, whatever its seed: anyone choosing keys (a cache keyed by
// request data) could put all of them in one probe sequence, making each
// Set and Get walk them all. Such keys must now hash apart.
func TestShortKeyHashIsSeeded(t *testing.T) {
	a, b := newT(t, 1<<20, nil), newT(t, 1<<20, nil)
	h := a.hash(collidingKey(0))
	same := 0
	for i := 1; i < 1000; i++ {
		if a.hash(collidingKey(i)) == h && b.hash(collidingKey(i)) == h {
			same++
		}
	}
	if same > 0 {
		t.Errorf("%d of 999 distinct keys have the hash of another, %#x, in two caches with their own seeds", same, h)
	}
	// What it costs: n such keys make Set and Get O(n).
	const n = 4000
	start := time.Now()
	for i := range n {
		if err := a.Set(collidingKey(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	colliding := time.Since(start)
	start = time.Now()
	for i := range n {
		if err := b.Set(key(i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	others := time.Since(start)
	start = time.Now()
	for i := range n {
		if _, ok := a.Get(nil, collidingKey(i)); !ok {
			t.Fatalf("colliding key %d missing", i)
		}
	}
	gets := time.Since(start)
	start = time.Now()
	for i := range n {
		if _, ok := b.Get(nil, key(i)); !ok {
			t.Fatalf("key %d missing", i)
		}
	}
	t.Logf("%d sets: %v with colliding keys, %v with others; %d gets: %v and %v", n, colliding, others, n, gets, time.Since(start))
}

// TestIndexTombstonesAtTheEnd5 builds, in a table of the smallest size, a
// cluster of one hash that starts at the last bucket and wraps round to the
// first, deletes all of it but its last entry (tombstones all, across the
// wrap), then the last (so remove's backward walk clears every tombstone,
// crossing bucket boundaries and the table's end), and again with the
// tombstones left so that inserts elsewhere make insert rehash to clear
// them, at the same size. The table must be right after every step.
func TestIndexTombstonesAtTheEnd5(t *testing.T) {
	p, err := pool.New(1<<16, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, err := newStore(p, 1000, 1<<16, "index tombstones")
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if err := s.ents.grow(1000); err != nil {
		t.Fatal(err)
	}
	model := map[uint32]uint64{}
	nextID := uint32(0)
	add := func(h uint64) uint32 {
		id := nextID
		nextID++
		s.entry(id).hash = h
		loc := locOf(uint64(id)*64, 1, 1)
		if err := s.idx.insert(s, h, id, loc); err != nil {
			t.Fatal(err)
		}
		model[id] = loc
		return id
	}
	del := func(id uint32) {
		s.idx.remove(s.entry(id).hash, id)
		delete(model, id)
	}
	check := func(what string) {
		t.Helper()
		if err := indexErr5(s, model); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, n := s.idx.table(s.idx.hdr.Load())
	if n != minBuckets {
		t.Fatalf("%d buckets", n)
	}
	const atEnd = 0xabcd_0000_ffff_ffff // home: the last bucket of any table
	for round := range 2 {
		var cluster []uint32
		for range 3*6 + 2 { // the last bucket, then five more and two slots
			cluster = append(cluster, add(atEnd))
		}
		check("cluster built")
		tb, _ := s.idx.table(s.idx.hdr.Load())
		if k := loadKey(tb.at(n-1), 0); k != keyOf(atEnd, cluster[0]) {
			t.Fatalf("the cluster does not start at the last bucket: %#x", k)
		}
		for _, id := range cluster[:len(cluster)-1] {
			del(id)
			check("delete in the cluster")
		}
		if s.idx.tombs != uint64(len(cluster)-1) {
			t.Fatalf("%d tombstones, want %d", s.idx.tombs, len(cluster)-1)
		}
		if round == 0 {
			del(cluster[len(cluster)-1])
			check("delete the cluster's last")
			if s.idx.tombs != 0 {
				t.Fatalf("%d tombstones left after the cluster's last went", s.idx.tombs)
			}
			continue
		}
		// Fill elsewhere until the slots in use and the tombstones pass 3/4:
		// insert must rehash, dropping the tombstones, at the same size.
		rehashes := s.idx.hdr.Load() >> (hdrHalfShift + 1)
		for i := 0; s.idx.hdr.Load()>>(hdrHalfShift+1) == rehashes; i++ {
			add(uint64(i+1)<<32 | uint64(i%40)<<26) // the first 40 buckets
			check("fill")
		}
		if _, n2 := s.idx.table(s.idx.hdr.Load()); s.idx.tombs != 0 || s.idx.live != uint64(len(model)) || n2 != bucketsFor(s.idx.live) {
			t.Fatalf("after the rehash: %d tombstones, %d live (model %d), %d buckets", s.idx.tombs, s.idx.live, len(model), n2)
		}
	}
}

// TestCompactionRelocates5 fragments a cache with a pool of its own, pins a
// few entries, and shrinks it (a compaction in place, which moves the
// unpinned entries and must relocate their slots, and shrinks the index),
// grows it, and again, and then without pins (a rebuild): after each, the
// index must locate every entry where it is, and Get (through the
// locations) return every value. The compaction must really have moved
// entries, or the test proves nothing.
func TestCompactionRelocates5(t *testing.T) {
	n := 3000
	if slow {
		n = 800
	}
	c := newT(t, 4<<20, &Options{MaxBudget: 8 << 20})
	for i := range n {
		setT(t, c, key5(i), value(i, 1, len5(i, 1, false)))
	}
	present := map[int]bool{}
	for i := range n {
		present[i] = true
	}
	r := rand.New(rand.NewPCG(5, 15))
	checkAll := func(what string) {
		t.Helper()
		checkIndex5(t, c)
		verifyT(t, c)
		for i := range n {
			v, ok := c.Get(nil, key5(i))
			switch {
			case ok != present[i]:
				t.Fatalf("%s: key %d: found %v, want %v", what, i, ok, present[i])
			case ok && (!valid(v, i) || len(v) != len5(i, 1, false)):
				t.Fatalf("%s: key %d: bad value", what, i)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	moved := 0
	for round := range 4 {
		// Delete most, so that the survivors lie scattered.
		for i := range n {
			if present[i] && r.IntN(4) > 0 {
				if _, err := c.Delete(key5(i)); err != nil {
					t.Fatal(err)
				}
				delete(present, i)
			}
		}
		var hds []Handle
		if round < 3 { // five pins, spread over the keys left
			var left []int
			for i := range n {
				if present[i] {
					left = append(left, i)
				}
			}
			for j := 0; j < 5 && len(left) > 0; j++ {
				_, h, err := c.Pin(key5(left[(2*j+1)*len(left)/10]))
				if err != nil {
					t.Fatal(err)
				}
				hds = append(hds, h)
			}
		}
		p0 := c.cur().p
		before := p0.Stats().BytesMoved
		st0 := c.Stats()
		if err := c.Resize(st0.BytesUsed + 1024); err != nil {
			t.Fatal(err)
		}
		moved += p0.Stats().BytesMoved - before
		_, nb := c.cur().idx.table(c.cur().idx.hdr.Load())
		t.Logf("round %d: %d entries, %d bytes moved so far, %d buckets", round, c.Len(), moved, nb)
		st1 := c.Stats()
		if round < 3 && st1.Compactions != st0.Compactions+1 || round == 3 && st1.Rebuilds != st0.Rebuilds+1 {
			t.Fatalf("round %d: compactions %d -> %d, rebuilds %d -> %d", round, st0.Compactions, st1.Compactions, st0.Rebuilds, st1.Rebuilds)
		}
		checkAll(fmt.Sprintf("round %d, shrunk", round))
		for _, h := range hds {
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
		}
		// Grow, and refill some.
		if err := c.Resize(4 << 20); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if !present[i] && r.IntN(3) == 0 {
				setT(t, c, key5(i), value(i, 1, len5(i, 1, false)))
				present[i] = true
			}
		}
		checkAll(fmt.Sprintf("round %d, grown", round))
	}
	if moved == 0 {
		t.Fatal("no compaction moved anything")
	}
}

// TestLocationLimits5 checks locOf and unloc at the edges of their fields:
// what fits round-trips, what does not is 0 (no location), never a
// location that names other bytes.
func TestLocationLimits5(t *testing.T) {
	for _, c := range []struct {
		off, kl, vl uint64
		fits        bool
	}{
		{0, 1, 0, true},
		{1<<40 - 1, 255, 65535, true},
		{1 << 40, 1, 1, false},
		{0, 256, 1, false},
		{0, 1, 65536, false},
		{12345, 255, 4096, true},
		{1<<40 - 1, 256, 65536, false},
	} {
		loc := locOf(c.off, c.kl, c.vl)
		if (loc != 0) != c.fits {
			t.Errorf("locOf(%d, %d, %d) = %#x, fits %v", c.off, c.kl, c.vl, loc, c.fits)
			continue
		}
		if loc == 0 {
			continue
		}
		if off, kl, vl := unloc(loc); off != c.off || kl != c.kl || vl != c.vl {
			t.Errorf("unloc(locOf(%d, %d, %d)) = %d, %d, %d", c.off, c.kl, c.vl, off, kl, vl)
		}
	}
}

// TestCloseRacingFastGets5 closes caches on a shared pool while readers
// Get their keys in loops and another user of the pool, at once, takes the
// space the Close gives back and forges entries there: a Get that began
// before the Close may return a value, but only its key's, never the
// forgery or bytes of another key; after Close every Get misses.
func TestCloseRacingFastGets5(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(6))
	p, err := pool.New(256<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rounds := 60
	if testing.Short() || slow {
		rounds = 15
	}
	s := newLinKeys(40, false)
	for round := range rounds {
		c, err := New(200<<10, &Options{Pool: p})
		if err != nil {
			t.Fatal(err)
		}
		for i := range s.keys {
			if err := c.Set(s.keys[i], value(i, 1, len5(i, 1, false))); err != nil && !errors.Is(err, ErrFull) {
				t.Fatal(err)
			}
		}
		var stop, closed atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf []byte
				for n := g; !stop.Load(); n++ {
					i := n % len(s.keys)
					after := closed.Load()
					var ok bool
					buf, ok = c.Get(buf[:0], s.keys[i])
					switch {
					case ok && after:
						errs <- fmt.Errorf("round %d: key %d found after Close returned", round, i)
						return
					case ok && (!valid(buf, i) || binary.LittleEndian.Uint32(buf[4:]) != 1 || len(buf) != len5(i, 1, false)):
						errs <- fmt.Errorf("round %d: key %d: bad value (%d bytes: % x)", round, i, len(buf), buf[:min(len(buf), 12)])
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() { // the other user: takes the freed space as soon as it can
			defer wg.Done()
			var held []pool.Ref
			defer func() {
				for _, ref := range held {
					_ = p.Unlatch(ref)
					_ = p.Release(ref)
				}
			}()
			for n := 0; !stop.Load(); n++ {
				i := n % len(s.keys)
				v := value(i, 1<<31-1, len5(i, 1, false))
				ref, b, err := p.Reserve(len(s.keys[i]) + len(v))
				if err != nil {
					runtime.Gosched()
					continue
				}
				copy(b[copy(b, s.keys[i]):], v)
				held = append(held, ref)
			}
		}()
		time.Sleep(time.Duration(1+round%5) * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		closed.Store(true)
		time.Sleep(2 * time.Millisecond)
		stop.Store(true)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
	}
	if st := p.Stats(); st.UsedSegments != 0 {
		t.Errorf("the pool holds %d segments after every cache closed and the other user let go", st.UsedSegments)
	}
}

// TestPackedCountersNoLostUpdates5 has goroutines each own a few of the 32
// CLOCK counters that share one word of the policy's table (and of the next
// word), raising them with hit and lowering them with passed and clearRef,
// all at once: each owner knows exactly what its counters must read, so a
// CAS that lost or carried an update into a neighbour shows.
func TestPackedCountersNoLostUpdates5(t *testing.T) {
	p := new(policy)
	if err := p.init(1<<20, 4096); err != nil {
		t.Fatal(err)
	}
	defer p.free()
	const owners, per = 8, 8 // 64 ids: two words
	iters := 20000
	if testing.Short() || slow {
		iters = 3000
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(owners))
	var wg sync.WaitGroup
	errs := make(chan error, owners)
	for g := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 16))
			var want [per]uint64
			id := func(k int) uint32 { return uint32(k*owners + g) } // interleaved with the others' ids
			for range iters {
				k := r.IntN(per)
				n := id(k) + numLists
				switch op := r.IntN(4); {
				case op < 2:
					p.hit(id(k), uint64(k))
					want[k] = min(want[k]+1, maxRef)
				case op < 3:
					if p.passed(n) != (want[k] > 0) {
						errs <- fmt.Errorf("id %d: passed with counter %d said otherwise", id(k), want[k])
						return
					}
					if want[k] > 0 {
						want[k]--
					}
				default:
					p.clearRef(n)
					want[k] = 0
				}
				if got := p.refOf(n); got != want[k] {
					errs <- fmt.Errorf("id %d: counter %d, want %d", id(k), got, want[k])
					return
				}
			}
			for k := range per {
				if got := p.refOf(id(k) + numLists); got != want[k] {
					errs <- fmt.Errorf("id %d: counter %d at the end, want %d", id(k), got, want[k])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// resizeWithPins starts a goroutine that, until stop, Resizes c to one of
// sizes, every other time while holding a pin on a key pin picks, and then
// sleeps up to maxSleepMicros; a failed Resize goes to errs.
func resizeWithPins(c *Cache, wg *sync.WaitGroup, stop *atomic.Bool, errs chan<- error, seed uint64, sizes []int, maxSleepMicros int, pin func(*rand.Rand) []byte) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(3, seed))
		for n := 0; !stop.Load(); n++ {
			var hd Handle
			pinned := false
			if n%2 == 0 {
				if _, h, err := c.Pin(pin(r)); err == nil {
					hd, pinned = h, true
				}
			}
			err := c.Resize(sizes[r.IntN(len(sizes))])
			if pinned {
				_ = hd.Release()
			}
			if err != nil {
				errs <- fmt.Errorf("resize: %w", err)
				return
			}
			time.Sleep(time.Duration(r.IntN(maxSleepMicros)) * time.Microsecond)
		}
	}()
}
