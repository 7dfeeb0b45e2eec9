package cache

// Adversarial tests of two changes: Pin's fast path (store.quickFind), which
// loads the entry's word first, then compares the key where the index
// slot's location says it is, and only then checks that the entry agrees
// with the slot (51752fd); and Set's insert, which skips its second lookup
// of the key when no key was added to the store's index since makeRoom
// found it absent (index.adds, b8d5328).
//
// White-box: TestQuickFindDisagreeingSlot6 gives a slot locations that
// disagree with its entry (the key's freed former segment, another key's
// segment, the right offset with the wrong lengths, past the store's end,
// none) and checks that quickFind never takes them, that Pin still pins the
// right entry, and that quickFind finds every key of a quiet cache that it
// should. TestInsertSkipsLookupOnlyWhileAbsent6 drives makeRoom and setIn
// by hand with other Sets, Deletes and a rebuild between them.
//
// Stresses: TestSameKeySets* run several writers of the same few keys at
// once, with Deletes and GetOrLoad loaders of them, while readers Get and
// Pin, and check a precedence rule (see prec) on every value read, then the
// counts against what the cache really holds. TestPinAccounting6 pauses
// writers and pinners now and then and checks Stats.Handles and
// BytesPinned against the handles really held, and that every held view
// is unchanged (pins of keys nobody changes, held while others churn and
// a resizer rebuilds and compacts, are in TestStableKeysAlwaysHit5).
// TestSameKeySetsRacingClose6 closes caches while same-key Sets, loads and
// pins run. OFFHEAP_SOAK (a duration, under 25s: within gives up at
// 30s) lengthens every stress.
//
// Found: TestReleaseRacingCloseChecked6, a Release racing Close in the
// checked build wrote handle slots Close had unmapped (SIGSEGV), until
// Release checked for a Close after unpinLocked.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
)

// len6 returns the length of version ver of key i's value: mostly within
// Pin's fast path, at times past copyCheckMax, and with big also past what
// a location holds (64 KiB).
func len6(i int, ver uint64, big bool) int {
	small := []int{12, 13, 40, 100, 255, 1000, 4095, 4096, 4097, 9000}
	x := uint64(i)*17 + ver*7
	if big && x%11 == 0 {
		return []int{65535, 65536, 70000}[x/11%3]
	}
	return small[x%uint64(len(small))]
}

// prec checks a precedence rule on the values read of keys that several
// goroutines write at once. Each write takes a stamp of a shared clock when
// it begins and, a Set that stored, one when it returned (end). A value
// must not be read once an operation that drops it completed: a Set, a
// Delete, or a Set that failed with ErrFull or ErrRejected (which take the
// old value out), that began after the value's Set had returned. A load's
// value counts as returned when its loader began: a Set or Delete begun
// during the load must win over it. So a read that began when the largest
// begin stamp of the completed dropping operations was m must not return a
// value whose end is below m. The version is in the value (see value).
type prec struct {
	big    bool
	keys   [][]byte
	clock  atomic.Uint64
	ver    atomic.Uint64
	m      []atomic.Uint64 // per key: the largest begin stamp of a completed dropping operation
	end    []atomic.Uint64 // per version: see above; 0 while unknown (or never)
	loaded []atomic.Bool   // per version: a load's value
	failed []atomic.Bool   // per version: its Set returned an error
}

func newPrec(keys [][]byte, big bool) *prec {
	n := 1 << 20
	if os.Getenv("OFFHEAP_SOAK") != "" {
		n = 1 << 23
	}
	return &prec{big: big, keys: keys, m: make([]atomic.Uint64, len(keys)), end: make([]atomic.Uint64, n),
		loaded: make([]atomic.Bool, n), failed: make([]atomic.Bool, n)}
}

// next returns a fresh version, or false once they ran out.
func (p *prec) next() (uint64, bool) {
	v := p.ver.Add(1)
	return v, v < uint64(len(p.end))
}

// out reports whether the versions ran out: the workers then stop.
func (p *prec) out() bool { return p.ver.Load() >= uint64(len(p.end)) }

func (p *prec) dropped(i int, begin uint64) {
	for {
		m := p.m[i].Load()
		if begin <= m || p.m[i].CompareAndSwap(m, begin) {
			return
		}
	}
}

// set stores a fresh version of key i.
func (p *prec) set(c *Cache, i int) error {
	ver, ok := p.next()
	if !ok {
		return nil
	}
	b := p.clock.Add(1)
	err := c.Set(p.keys[i], value(i, int(ver), len6(i, ver, p.big)))
	e := p.clock.Add(1)
	switch {
	case err == nil:
		p.end[ver].Store(e)
		p.dropped(i, b)
	case errors.Is(err, ErrFull), errors.Is(err, ErrRejected):
		p.failed[ver].Store(true)
		p.dropped(i, b)
	case errors.Is(err, ErrClosed), errors.Is(err, ErrTooLarge): // nothing said about the old value
		p.failed[ver].Store(true)
	default:
		return fmt.Errorf("set key %d: %w", i, err)
	}
	return nil
}

func (p *prec) del(c *Cache, i int) error {
	b := p.clock.Add(1)
	if _, err := c.Delete(p.keys[i]); err != nil {
		if errors.Is(err, ErrClosed) {
			return nil
		}
		return fmt.Errorf("delete key %d: %w", i, err)
	}
	p.dropped(i, b)
	return nil
}

// load is GetOrLoad of key i, whose loader makes a fresh version.
func (p *prec) load(c *Cache, i int) error {
	v, err := c.GetOrLoad(context.Background(), nil, p.keys[i], func(ctx context.Context, key []byte) ([]byte, error) {
		ver, ok := p.next()
		if !ok {
			return nil, errors.New("out of versions")
		}
		p.loaded[ver].Store(true)
		p.end[ver].Store(p.clock.Add(1))
		return value(i, int(ver), len6(i, ver, p.big)), nil
	})
	if err != nil {
		if errors.Is(err, ErrClosed) || bytes.Contains([]byte(err.Error()), []byte("out of versions")) {
			return nil
		}
		return fmt.Errorf("load key %d: %w", i, err)
	}
	// GetOrLoad may return a load's value that a Delete superseded (its
	// waiters get it all the same), so only the value itself is checked.
	return p.check("getorload", i, v, 0)
}

// check judges value v of key i, read by a read that began when p.m[i] was lo.
func (p *prec) check(what string, i int, v []byte, lo uint64) error {
	if !valid(v, i) {
		return fmt.Errorf("%s of key %d: %d bytes that are not a value of the key: % x", what, i, len(v), v[:min(len(v), 16)])
	}
	ver := uint64(binary.LittleEndian.Uint32(v[4:]))
	switch e := p.end[ver].Load(); {
	case ver == 0 || ver > p.ver.Load():
		return fmt.Errorf("%s of key %d: version %d never made", what, i, ver)
	case len(v) != len6(i, ver, p.big):
		return fmt.Errorf("%s of key %d: version %d of %d bytes, made with %d", what, i, ver, len(v), len6(i, ver, p.big))
	case e != 0 && e < lo:
		return fmt.Errorf("%s of key %d: version %d (end %d, load %v), but a write that began at %d, after it, completed before the read began",
			what, i, ver, e, p.loaded[ver].Load(), lo)
	}
	return nil
}

func (p *prec) get(c *Cache, i int, buf []byte) ([]byte, error) {
	lo := p.m[i].Load()
	v, ok := c.Get(buf[:0], p.keys[i])
	if !ok {
		return v, nil
	}
	return v, p.check("get", i, v, lo)
}

// pin pins key i, checks the view, holds it a moment and checks it did not
// change.
func (p *prec) pin(c *Cache, i int, hold time.Duration) error {
	lo := p.m[i].Load()
	v, hd, err := c.Pin(p.keys[i])
	switch {
	case err == ErrNotFound, errors.Is(err, ErrClosed):
		return nil
	case err != nil:
		return fmt.Errorf("pin key %d: %w", i, err)
	}
	defer hd.Release()
	if err := p.check("pin", i, v, lo); err != nil {
		return err
	}
	was := bytes.Clone(v)
	if hold > 0 {
		time.Sleep(hold)
	} else {
		runtime.Gosched()
	}
	if !bytes.Equal(v, was) {
		return fmt.Errorf("pinned view of key %d changed while held", i)
	}
	return nil
}

// quiet checks a quiet cache: every value read obeys the rule against all
// that completed, was stored by a Set that said so (or a load), and the
// entries read are exactly what Len, Stats and the pool count.
func (p *prec) quiet(t *testing.T, c *Cache, sharedPool *pool.Pool) {
	t.Helper()
	n, used := 0, 0
	for i, k := range p.keys {
		v, ok := c.Get(nil, k)
		if !ok {
			if c.Has(k) {
				t.Errorf("key %d: Has finds it, Get does not", i)
			}
			continue
		}
		n++
		used += int(c.weight(uint64(len(k) + len(v))))
		if err := p.check("quiet get", i, v, p.m[i].Load()); err != nil {
			t.Error(err)
			continue
		}
		ver := uint64(binary.LittleEndian.Uint32(v[4:]))
		if p.failed[ver].Load() {
			t.Errorf("key %d holds version %d, whose Set failed", i, ver)
		}
		if p.end[ver].Load() == 0 {
			t.Errorf("key %d holds version %d, whose Set never said it stored", i, ver)
		}
		pv, hd, err := c.Pin(k)
		if err != nil || !bytes.Equal(pv, v) {
			t.Errorf("key %d: Pin = %v, %v; Get read version %d", i, err, pv != nil, ver)
		}
		if err == nil {
			_ = hd.Release()
		}
	}
	st := c.Stats()
	if c.Len() != n || st.Entries != n || st.BytesUsed != used || st.BytesUsed > st.Budget || st.Handles != 0 || st.BytesPinned != 0 {
		t.Errorf("Len %d, stats %+v; but the cache holds %d entries of %d bytes", c.Len(), st, n, used)
	}
	if sharedPool == nil {
		if ps := c.cur().p.Stats(); ps.Used != used || ps.UsedSegments != n {
			t.Errorf("the pool holds %d segments of %d bytes, the cache %d entries of %d", ps.UsedSegments, ps.Used, n, used)
		}
	}
	verifyT(t, c)
	checkIndex5(t, c)
}

// keys6 returns n keys of the shapes the index treats differently.
func keys6(n int) [][]byte {
	ks := make([][]byte, n)
	for i := range ks {
		ks[i] = key5(i)
	}
	return ks
}

// sameKeyConfig is one same-key stress.
type sameKeyConfig struct {
	budget, maxBudget int
	poolBytes         int // > 0: a shared pool of this capacity, with another user filling it
	slowReclaim       bool
	keys              int
	writersPerKey     int
	loaders, readers  int
	pinners           int
	resize            []int // sizes a resizer cycles through, with and without a pin out
	big               bool
}

// slowReclaimer is a reclaimer of a shared pool that frees nothing but
// takes its time, so that the Sets in the pool's slow path stay there a
// while (between makeRoom and insert) as others Set, Delete and load their
// keys.
type slowReclaimer struct{ calls atomic.Int64 }

func (r *slowReclaimer) Reclaim(int) int {
	r.calls.Add(1)
	time.Sleep(30 * time.Microsecond)
	return 0
}

// hog is another user of a shared pool: it keeps up to about half of it
// committed, in pieces, so the cache's reservations find it full and ask
// the reclaimers.
func hog(p *pool.Pool, capacity int, stop *atomic.Bool) error {
	r := rand.New(rand.NewPCG(6, 6))
	var held []pool.Ref
	var sizes []int
	size := 0
	defer func() {
		for _, ref := range held {
			_ = p.Release(ref)
		}
	}()
	buf := make([]byte, 16<<10)
	for !stop.Load() {
		n := 512 + r.IntN(len(buf)-512)
		if size+n < capacity/2 {
			ref, err := p.Commit(buf[:n])
			if err == nil {
				held = append(held, ref)
				sizes = append(sizes, n)
				size += n
			} else if !errors.Is(err, pool.ErrFull) {
				return fmt.Errorf("hog commit: %w", err)
			}
		}
		if len(held) > 0 && (r.IntN(3) == 0 || size+n >= capacity/2) {
			j := r.IntN(len(held))
			if err := p.Release(held[j]); err != nil {
				return fmt.Errorf("hog release: %w", err)
			}
			size -= sizes[j]
			held = append(held[:j], held[j+1:]...)
			sizes = append(sizes[:j], sizes[j+1:]...)
		}
		time.Sleep(time.Duration(r.IntN(100)) * time.Microsecond)
	}
	return nil
}

func sameKeyStress(t *testing.T, cfg sameKeyConfig) {
	procs := cfg.keys*cfg.writersPerKey + cfg.loaders + cfg.readers + cfg.pinners + 2
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(min(procs, 8)))
	p := newPrec(keys6(cfg.keys), cfg.big)
	stressThenClose(t, cfg.budget, cfg.maxBudget, cfg.poolBytes, func(c *Cache, sp *pool.Pool) {
		var stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		run := func(f func() error) {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- f() }()
		}
		var rec *slowReclaimer
		if sp != nil {
			run(func() error { return hog(sp, cfg.poolBytes, &stop) })
			if cfg.slowReclaim {
				rec = new(slowReclaimer)
				if err := sp.AddReclaimer(rec); err != nil {
					t.Fatal(err)
				}
				defer sp.RemoveReclaimer(rec)
			}
		}
		for i := range cfg.keys {
			for w := range cfg.writersPerKey {
				run(func() error {
					r := rand.New(rand.NewPCG(uint64(i), uint64(w)))
					for n := 0; !stop.Load() && !p.out(); n++ {
						var err error
						switch op := r.IntN(16); {
						case op < 11:
							err = p.set(c, i)
						case op < 13:
							err = p.del(c, i)
						case op < 15: // out and in again: the id and offset come back
							if err = p.del(c, i); err == nil {
								err = p.set(c, i)
							}
						default:
							runtime.Gosched()
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
			}
		}
		for g := range cfg.loaders {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(g), 61))
				for !stop.Load() && !p.out() {
					i := r.IntN(cfg.keys)
					if r.IntN(4) == 0 {
						if err := p.del(c, i); err != nil {
							return err
						}
					}
					if err := p.load(c, i); err != nil {
						return err
					}
				}
				return nil
			})
		}
		for g := range cfg.readers {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(g), 62))
				var buf []byte
				for n := 0; !stop.Load(); n++ {
					if n%128 == 0 {
						time.Sleep(10 * time.Microsecond)
					}
					var err error
					if buf, err = p.get(c, r.IntN(cfg.keys), buf); err != nil {
						return err
					}
				}
				return nil
			})
		}
		for g := range cfg.pinners {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(g), 63))
				for n := 0; !stop.Load(); n++ {
					hold := time.Duration(0)
					if n%16 == 0 {
						hold = time.Duration(r.IntN(100)) * time.Microsecond
					}
					if err := p.pin(c, r.IntN(cfg.keys), hold); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if len(cfg.resize) > 0 {
			run(func() error {
				r := rand.New(rand.NewPCG(64, 64))
				for n := 0; !stop.Load(); n++ {
					var hd Handle
					pinned := false
					if n%3 == 0 { // a pin out: compaction in place rather than a rebuild
						if _, h, err := c.Pin(p.keys[r.IntN(cfg.keys)]); err == nil {
							hd, pinned = h, true
						}
					}
					size := cfg.resize[r.IntN(len(cfg.resize))]
					err := c.Resize(size)
					if pinned {
						if err := hd.Release(); err != nil {
							return err
						}
					}
					if err != nil && !errors.Is(err, ErrFull) {
						return fmt.Errorf("resize %d: %w", size, err)
					}
					time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
				}
				return nil
			})
		}
		within(t, "same-key stress", func() { stopAfter(t, soak(time.Second, 200*time.Millisecond), &stop, &wg, errs) })
		if t.Failed() {
			return
		}
		if p.out() {
			t.Logf("the versions ran out before the end")
		}
		st := c.Stats()
		t.Logf("versions %d, sets %d, hits %d, misses %d, rejections %d, evictions %d, deletes %d, loads %d, compactions %d, rebuilds %d",
			p.ver.Load(), st.Sets, st.Hits, st.Misses, st.Rejections, st.Evictions, st.Deletes, st.Loads, st.Compactions, st.Rebuilds)
		if rec != nil {
			t.Logf("slow reclaimer called %d times", rec.calls.Load())
		}
		p.quiet(t, c, sp)
	})
}

// TestSameKeySets6: three writers per key Set and Delete the same keys at
// once in a cache that evicts nothing, with loaders, readers and pinners.
func TestSameKeySets6(t *testing.T) {
	sameKeyStress(t, sameKeyConfig{budget: 4 << 20, keys: 5, writersPerKey: 3, loaders: 1, readers: 1, pinners: 2, big: true})
}

// TestSameKeySetsTiny6: the same in a cache that holds a few entries, so
// makeRoom evicts and waits for the Sets in flight (dropping the lock
// after it found the key absent).
func TestSameKeySetsTiny6(t *testing.T) {
	sameKeyStress(t, sameKeyConfig{budget: 24 << 10, keys: 5, writersPerKey: 3, loaders: 1, readers: 1, pinners: 1})
}

// TestSameKeySetsResized6: with a resizer that rebuilds the store (no
// pins out) or compacts it (a pin out) under the Sets.
func TestSameKeySetsResized6(t *testing.T) {
	sameKeyStress(t, sameKeyConfig{budget: 256 << 10, maxBudget: 1 << 20, keys: 5, writersPerKey: 2, loaders: 1, readers: 1, pinners: 2,
		resize: []int{40 << 10, 128 << 10, 256 << 10, 1 << 20}})
}

// TestSameKeySetsShared6: on a shared pool another user keeps filling,
// with a reclaimer that takes its time, so Sets wait in the pool's slow
// path between makeRoom and insert.
func TestSameKeySetsShared6(t *testing.T) {
	sameKeyStress(t, sameKeyConfig{budget: 256 << 10, maxBudget: 256 << 10, poolBytes: 56 << 10, slowReclaim: true,
		keys: 5, writersPerKey: 3, loaders: 1, readers: 1, pinners: 1})
}

// TestInsertSkipsLookupOnlyWhileAbsent6 drives a Set by hand: makeRoom,
// then, between it and setIn, another Set of the key, a Set of another key
// then a Delete of the key, a Delete and Set of the key (the same id and
// offset come back), a rebuild that replaces the store, a replace of the
// key's value that a loader's Set must not overwrite. Each time the
// key must be indexed once, with the right value, and verify must hold.
func TestInsertSkipsLookupOnlyWhileAbsent6(t *testing.T) {
	k := []byte("key")
	type step struct {
		name    string
		between func(c *Cache)
		loader  bool   // the hand-driven Set is a load's
		stale   bool   // a Set or Delete superseded it (as supersede would mark it)
		want    string // the value after; "" for none
	}
	steps := []step{
		{"nothing", func(c *Cache) {}, false, false, "mine"},
		{"set", func(c *Cache) { setT(t, c, k, []byte("other value, longer")) }, false, false, "mine"},
		{"set other key, delete", func(c *Cache) {
			setT(t, c, []byte("another"), []byte("x"))
			if _, err := c.Delete(k); err != nil {
				t.Fatal(err)
			}
		}, false, false, "mine"},
		{"set, delete, set", func(c *Cache) {
			setT(t, c, k, []byte("o1"))
			if _, err := c.Delete(k); err != nil {
				t.Fatal(err)
			}
			setT(t, c, k, []byte("o2"))
		}, false, false, "mine"},
		{"set, rebuild", func(c *Cache) {
			setT(t, c, k, []byte("before rebuild"))
			if err := c.Resize(512 << 10); err != nil {
				t.Fatal(err)
			}
			if err := c.Resize(1 << 20); err != nil {
				t.Fatal(err)
			}
		}, false, false, "again"},
		{"rebuild only", func(c *Cache) {
			if err := c.Resize(512 << 10); err != nil {
				t.Fatal(err)
			}
			if err := c.Resize(1 << 20); err != nil {
				t.Fatal(err)
			}
		}, false, false, "again"},
		{"loader, set", func(c *Cache) { setT(t, c, k, []byte("the set's")) }, true, false, "the set's"},
		{"loader, set of another key", func(c *Cache) { setT(t, c, []byte("another"), []byte("y")) }, true, false, "mine"},
		{"loader, superseded, nothing stored", func(c *Cache) {}, true, true, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			c := newT(t, 1<<20, &Options{MaxBudget: 1 << 20})
			v := []byte("mine")
			h, weight := c.hash(k), c.weight(uint64(len(k)+len(v)))
			var f *flight
			if s.loader {
				f = &flight{}
			}
			st, ab, err, _ := c.beginSet(k, v, h, weight, f, false)
			if err != nil {
				t.Fatal(err)
			}
			s.between(c)
			if s.stale {
				f.stale.Store(true)
			}
			err, again := c.setIn(st, k, v, h, weight, f, ab)
			c.sets.Done()
			switch {
			case s.want == "again":
				if !again || err != nil {
					t.Fatalf("setIn after a rebuild: %v, again %v", err, again)
				}
				if err := c.Set(k, v); err != nil {
					t.Fatal(err)
				}
			case s.loader && s.want != "mine":
				if err != errSuperseded || again {
					t.Fatalf("loader's setIn: %v, again %v; want errSuperseded", err, again)
				}
			default:
				if err != nil || again {
					t.Fatalf("setIn: %v, again %v", err, again)
				}
			}
			want := s.want
			if want == "again" {
				want = "mine"
			}
			got, ok := c.Get(nil, k)
			if want == "" {
				if ok {
					t.Fatalf("Get = %q after a superseded load", got)
				}
			} else if !ok || string(got) != want {
				t.Fatalf("Get = %q, %v; want %q", got, ok, want)
			}
			n := 0
			if want != "" {
				n++
			}
			if _, ok := c.Get(nil, []byte("another")); ok {
				n++
			}
			if c.Len() != n || c.Stats().Entries != n {
				t.Fatalf("Len %d, Entries %d; want %d", c.Len(), c.Stats().Entries, n)
			}
			if ps := c.cur().p.Stats(); ps.UsedSegments != n {
				t.Fatalf("the pool holds %d segments, want %d", ps.UsedSegments, n)
			}
			verifyT(t, c)
			checkIndex5(t, c)
		})
	}
}

// TestQuickFindDisagreeingSlot6 gives the slot of a key locations that
// disagree with its entry: its freed former segment (which still holds the
// key, with the old value), another key's segment (same lengths), the
// entry's offset with other lengths, an offset past the store's end, and
// none. quickFind must not take any (it returns foundRetry), and Pin must
// still pin the entry with its value, and release it cleanly. In a quiet
// cache quickFind must find every key whose slot has a location and whose
// value is at most copyCheckMax, where the entry is, and say foundNo for a
// key absent.
func TestQuickFindDisagreeingSlot6(t *testing.T) {
	c := newT(t, 1<<20, nil)
	k, k2 := []byte("key-aaaa"), []byte("key-bbbb")
	setT(t, c, k, value(0, 1, 100))
	setT(t, c, k2, value(1, 1, 100))
	st := c.cur()
	h := c.hash(k)
	_, _, off0, _, f := st.find(h, k)
	if f != foundYes {
		t.Fatal("key not found")
	}
	// Set takes the old value out before it reserves: a longer value does
	// not fit the hole it leaves, which keeps the key and the old value.
	setT(t, c, k, value(0, 2, 300))
	_, _, offGone, _, _ := st.find(h, k)
	// And a pinned one stays, gone, with its bytes, until released.
	_, gone, err := c.Pin(k)
	if err != nil {
		t.Fatal(err)
	}
	v := value(0, 3, 300)
	setT(t, c, k, v)
	id, _, off, lens, f := st.find(h, k)
	_, _, off2, _, f2 := st.find(c.hash(k2), k2)
	if f != foundYes || f2 != foundYes || off == off0 || off == offGone || off0 == offGone {
		t.Fatalf("setup: %v %v, offsets %d %d %d", f, f2, off0, offGone, off)
	}
	for _, o := range []uint64{off0, offGone} {
		if !bytes.Equal(st.view(o, uint64(len(k))), k) {
			t.Logf("the former segment at %d no longer holds the key (the checked build poisons freed bytes)", o)
		}
	}
	kl, vl := keyLen(lens), valLen(lens)
	bk, _, j := st.idx.slotFor(h, id)
	good := loadLoc(bk, j)
	if good != locOf(off, kl, vl) {
		t.Fatalf("slot location %#x, want %#x", good, locOf(off, kl, vl))
	}
	bad := []struct {
		name string
		loc  uint64
	}{
		{"the key's freed former segment", locOf(off0, kl, vl)},
		{"the key's freed former segment, its lengths", locOf(off0, kl, 100)},
		{"the key's former segment, gone but pinned", locOf(offGone, kl, vl)},
		{"another key's segment", locOf(off2, kl, 100)},
		{"the entry's offset, a longer value", locOf(off, kl, vl+1)},
		{"the entry's offset, a shorter value", locOf(off, kl, vl-1)},
		{"past the store's end", locOf(st.hi.Load(), kl, vl)},
		{"none", 0},
	}
	// Pin's fast path trusts the slot, as Get does (peek); the long path
	// checks the slot against the entry, and must refuse every bad one.
	hazardsOff = true
	defer func() { hazardsOff = false }()
	for _, b := range bad {
		c.mu.Lock()
		write(bk, j, keyOf(h, id), b.loc)
		c.mu.Unlock()
		pv, hd, err := c.Pin(k)
		if err != nil || !bytes.Equal(pv, v) {
			t.Errorf("%s: Pin = %v, value %v", b.name, err, bytes.Equal(pv, v))
		}
		if err == nil {
			// The gone entry's pin too.
			if st := c.Stats(); st.Handles != 2 || st.BytesPinned != int(c.weight(kl+vl)+c.weight(kl+300)) {
				t.Errorf("%s: pinned, stats %+v", b.name, st)
			}
			if err := hd.Release(); err != nil {
				t.Error(err)
			}
		}
		c.mu.Lock()
		write(bk, j, keyOf(h, id), good)
		c.mu.Unlock()
	}
	hazardsOff = false
	if err := gone.Release(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Handles != 0 || st.BytesPinned != 0 {
		t.Errorf("after the releases: stats %+v", st)
	}
	verifyT(t, c)

	// A quiet cache after churn: keys of every shape, values of every
	// length around the limits.
	r := rand.New(rand.NewPCG(1, 66))
	const n = 400
	keys := keys6(n)
	lens6 := []int{12, 255, 4095, 4096, 4097, 65535, 65536, 70000}
	present := map[int]int{}
	for range 3 * n {
		i := r.IntN(n)
		if r.IntN(3) == 0 {
			if _, err := c.Delete(keys[i]); err != nil {
				t.Fatal(err)
			}
			delete(present, i)
			continue
		}
		l := lens6[r.IntN(len(lens6))]
		if err := c.Set(keys[i], value(i, 1, l)); err != nil {
			if errors.Is(err, ErrFull) || errors.Is(err, ErrRejected) {
				delete(present, i)
				continue
			}
			t.Fatal(err)
		}
		present[i] = l
	}
	st = c.cur()
	for i, k := range keys {
		h := c.hash(k)
		l, ok := present[i]
		_, _, _, _, ff := st.find(h, k)
		if ff == foundYes != ok {
			// an eviction took it
			ok = ff == foundYes
			l = 0
		}
		p, gf := st.peek(h, k)
		gid, goff, glens := p.id, p.off, p.lens
		switch {
		case !ok:
			if gf != foundNo {
				t.Errorf("key %d, absent: peek = %v", i, gf)
			}
			continue
		case len(k) >= 256 || l >= 1<<16:
			if gf == foundYes {
				t.Errorf("key %d (%d bytes, value %d): peek found a location no slot holds", i, len(k), l)
			}
			continue
		}
		e := st.entry(gid)
		if gf != foundYes || goff != e.loadOff() || glens != e.loadLens() || e.loadHash() != h ||
			!bytes.Equal(st.view(goff, uint64(len(k))), k) {
			t.Errorf("key %d (%d bytes, value %d): peek = %v, id %d, off %d, lens %#x; the entry says off %d, lens %#x",
				i, len(k), l, gf, gid, goff, glens, e.loadOff(), e.loadLens())
		}
	}
	verifyT(t, c)
	checkIndex5(t, c)
}

// heldPin is a handle a test holds and what its view showed when pinned.
type heldPin struct {
	i    int
	v    []byte
	was  []byte
	hd   Handle
	size int64
}

// TestPinAccounting6: writers replace (with values of other lengths),
// delete and re-set a few keys, and a resizer shrinks and grows the cache,
// in a cache that evicts, while pinners pin them, holding several handles
// each. Now and then all stop between operations: Stats.Handles must then
// be the handles held and BytesPinned the weight of the distinct entries
// they pin (distinct views), every view must be as it was when pinned, and
// the pins the entry table holds must agree. At the end, with all
// released, both are zero and Close succeeds (stressThenClose).
func TestPinAccounting6(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(6))
	const keys = 6
	p := newPrec(keys6(keys), false)
	stressThenClose(t, 64<<10, 256<<10, 0, func(c *Cache, _ *pool.Pool) {
		var stop atomic.Bool
		var gate sync.RWMutex // held for reading by every operation; the checker takes it to stop them all
		var mu sync.Mutex
		held := map[*heldPin]bool{}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		run := func(f func() error) {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- f() }()
		}
		for w := range 2 {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(w), 71))
				for !stop.Load() {
					i := r.IntN(keys)
					gate.RLock()
					var err error
					switch r.IntN(4) {
					case 0:
						if err = p.del(c, i); err == nil {
							err = p.set(c, i)
						}
					case 1:
						err = p.del(c, i)
					default:
						err = p.set(c, i)
					}
					gate.RUnlock()
					if err != nil {
						return err
					}
				}
				return nil
			})
		}
		for g := range 2 {
			run(func() error {
				r := rand.New(rand.NewPCG(uint64(g), 72))
				var mine []*heldPin
				defer func() {
					gate.RLock() // the checker must not count these as held meanwhile
					defer gate.RUnlock()
					for _, h := range mine {
						mu.Lock()
						delete(held, h)
						mu.Unlock()
						_ = h.hd.Release()
					}
				}()
				for !stop.Load() {
					gate.RLock()
					if len(mine) < 6 && r.IntN(2) == 0 {
						i := r.IntN(keys)
						lo := p.m[i].Load()
						v, hd, err := c.Pin(p.keys[i])
						switch {
						case err == nil:
							if err := p.check("pin", i, v, lo); err != nil {
								_ = hd.Release()
								gate.RUnlock()
								return err
							}
							h := &heldPin{i, v, bytes.Clone(v), hd, c.weight(uint64(len(p.keys[i]) + len(v)))}
							mine = append(mine, h)
							mu.Lock()
							held[h] = true
							mu.Unlock()
						case err != ErrNotFound && !errors.Is(err, ErrBusy):
							gate.RUnlock()
							return fmt.Errorf("pin: %w", err)
						}
					} else if len(mine) > 0 {
						j := r.IntN(len(mine))
						h := mine[j]
						mine = append(mine[:j], mine[j+1:]...)
						mu.Lock()
						delete(held, h)
						mu.Unlock()
						if !bytes.Equal(h.v, h.was) {
							gate.RUnlock()
							return fmt.Errorf("pinned view of key %d changed", h.i)
						}
						if err := h.hd.Release(); err != nil {
							gate.RUnlock()
							return err
						}
					}
					gate.RUnlock()
				}
				return nil
			})
		}
		run(func() error {
			r := rand.New(rand.NewPCG(73, 73))
			for !stop.Load() {
				gate.RLock()
				size := []int{32 << 10, 64 << 10, 256 << 10}[r.IntN(3)]
				err := c.Resize(size)
				gate.RUnlock()
				if err != nil && !errors.Is(err, ErrFull) {
					return fmt.Errorf("resize: %w", err)
				}
				time.Sleep(time.Duration(r.IntN(500)) * time.Microsecond)
			}
			return nil
		})
		checks := 0
		run(func() error {
			for !stop.Load() {
				time.Sleep(3 * time.Millisecond)
				gate.Lock()
				mu.Lock()
				views := map[*byte]int64{}
				for h := range held {
					if !bytes.Equal(h.v, h.was) {
						mu.Unlock()
						gate.Unlock()
						return fmt.Errorf("pinned view of key %d changed", h.i)
					}
					views[unsafe.SliceData(h.v)] = h.size
				}
				var want int64
				for _, s := range views {
					want += s
				}
				nh := len(held)
				mu.Unlock()
				st := c.Stats()
				pins, pbytes := c.heldPins()
				gate.Unlock()
				checks++
				if st.Handles != nh || int64(st.BytesPinned) != want || pins != int64(nh) || pbytes != want {
					if os.Getenv("ADV6_DEBUG") != "" {
						for h := range held {
							i := uint32(h.hd.h) - 1
							sl := c.hslots.at(uint64(i))
							e := c.cur().entry(sl.entry)
							fmt.Printf("held key %d len %d view %p hd %#x slot word %#x entry %d word %#x off %d lens %#x stats %+v\n", h.i, len(h.v), unsafe.SliceData(h.v), h.hd.h, sl.word, sl.entry, e.loadWord(), e.loadOff(), e.loadLens(), st)
						}
					}
					return fmt.Errorf("%d handles held on %d entries of %d bytes; Stats says %d handles, %d bytes pinned; the entry table %d pins, %d bytes",
						nh, len(views), want, st.Handles, st.BytesPinned, pins, pbytes)
				}
			}
			return nil
		})
		within(t, "pin accounting", func() { stopAfter(t, soak(time.Second, 200*time.Millisecond), &stop, &wg, errs) })
		if t.Failed() {
			return
		}
		t.Logf("%d checks", checks)
		if st := c.Stats(); st.Handles != 0 || st.BytesPinned != 0 {
			t.Errorf("all released: stats %+v", st)
		}
		verifyT(t, c)
		checkIndex5(t, c)
	})
}

// TestSameKeySetsRacingClose6 closes caches, of their own pool and on a
// shared one, while writers Set and Delete the same keys at once, a loader
// loads them and a pinner pins them: every Set stores or fails with
// ErrClosed (or ErrFull, ErrRejected), Close succeeds once the pinner's
// handle is back, and the shared pool holds nothing of the cache after.
func TestSameKeySetsRacingClose6(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(6))
	rounds := 24
	if testing.Short() {
		rounds = 6
	}
	if v := os.Getenv("OFFHEAP_SOAK"); v != "" {
		rounds = 240
	}
	for round := range rounds {
		shared := round%2 == 1
		var sp *pool.Pool
		o := &Options{}
		if shared {
			var err error
			if sp, err = pool.New(96<<10, nil); err != nil {
				t.Fatal(err)
			}
			o.Pool = sp
		}
		c, err := New(64<<10, o)
		if err != nil {
			t.Fatal(err)
		}
		p := newPrec(keys6(3), false)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		var closed atomic.Bool
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(g), uint64(round)))
				for !closed.Load() {
					i := r.IntN(3)
					var err error
					if r.IntN(5) == 0 {
						err = p.del(c, i)
					} else {
						err = p.set(c, i)
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !closed.Load(); i++ {
				if err := p.load(c, i%3); err != nil {
					errs <- err
					return
				}
			}
		}()
		var pinStop atomic.Bool
		var pinWG sync.WaitGroup
		pinWG.Add(1)
		go func() {
			defer pinWG.Done()
			for i := 0; !closed.Load() && !pinStop.Load(); i++ {
				if err := p.pin(c, i%3, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
		time.Sleep(time.Duration(200+round%7*300) * time.Microsecond)
		within(t, "close racing same-key sets", func() {
			defer pinWG.Wait()
			for {
				err := c.Close()
				if err == nil {
					break
				}
				if !errors.Is(err, ErrBusy) {
					t.Errorf("close: %v", err)
					break
				}
				runtime.Gosched()
			}
			closed.Store(true)
			wg.Wait()
		})
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if c.Len() != 0 {
			t.Errorf("Len %d after Close", c.Len())
		}
		if shared {
			if st := sp.Stats(); st.Used != 0 || st.UsedSegments != 0 {
				t.Fatalf("round %d: the shared pool holds %d segments of %d bytes after Close", round, st.UsedSegments, st.Used)
			}
			if err := sp.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestLinearizablePinnersScribbled6 is adversarial5's linearizability
// stress with few keys and many pinners, on a shared pool another user
// fills with forged entries of the cache's keys (a pinned view of a freed
// segment would show one): every pinned view must be its key's, fresh
// enough, and unchanged while held.
func TestLinearizablePinnersScribbled6(t *testing.T) {
	linStress(t, linConfig{budget: 64 << 10, maxBudget: 64 << 10, poolBytes: 48 << 10, keys: 10, writers: 2, readers: 1, pinners: 3, scribble: true})
}

// TestLinearizablePinnersResized6: few keys, many pinners, and a resizer
// that rebuilds and compacts under them.
func TestLinearizablePinnersResized6(t *testing.T) {
	linStress(t, linConfig{budget: 64 << 10, maxBudget: 256 << 10, keys: 10, writers: 2, readers: 1, pinners: 3, resize: true})
}

// TestReleaseRacingCloseChecked6 (the checked build): the last Release of
// a pinned entry that was replaced (gone) frees it in unpinLocked, which,
// in the checked build, trades Release's read lock for the write lock and
// back. Between its Unlock and the RLock after it the entry has no pins, so
// a Close on another goroutine succeeds and, in the checked build, unmaps
// the handle slots at once (vmem.Retire). Release then went on to
// freeHandle, whose pushHandles wrote the unmapped handle slot: SIGSEGV,
// which ended the test binary, 5 runs of 5.
func TestReleaseRacingCloseChecked6(t *testing.T) {
	if !check.On {
		t.Skip("the checked build's Release")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	k := []byte("k")
	rounds := 3000
	for round := range rounds {
		c, err := New(64<<10, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(k, []byte("old")); err != nil {
			t.Fatal(err)
		}
		_, hd, err := c.Pin(k)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Set(k, []byte("new")); err != nil { // the pinned entry is gone: its last Release frees it
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			for {
				err := c.Close()
				if !errors.Is(err, ErrBusy) {
					done <- err
					return
				}
			}
		}()
		if round%2 == 0 {
			runtime.Gosched()
		}
		if err := hd.Release(); err != nil && !errors.Is(err, ErrClosed) {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestPinEdgeLengths6 pins values at the edges of Pin's fast path and of a
// location, with the shortest and longest keys a location holds: an empty
// value, one byte, copyCheckMax and one more, 64 KiB less one and 64 KiB;
// peek must take exactly those a slot's location holds, and every Pin must
// return the value, and count and release its bytes.
func TestPinEdgeLengths6(t *testing.T) {
	c := newT(t, 1<<20, nil)
	st := c.cur()
	for _, kl := range []int{1, 16, 255, 256} {
		for _, vl := range []int{0, 1, copyCheckMax, copyCheckMax + 1, 1<<16 - 1, 1 << 16} {
			k := bytes.Repeat([]byte{byte('a' + kl%26)}, kl)
			v := make([]byte, vl)
			for i := range v {
				v[i] = byte(i*7 + vl)
			}
			setT(t, c, k, v)
			p, f := st.peek(c.hash(k), k)
			off, lens := p.off, p.lens
			fast := kl < 256 && vl < 1<<16
			if (f == foundYes) != fast || fast && (keyLen(lens) != uint64(kl) || valLen(lens) != uint64(vl) || !bytes.Equal(st.view(off, uint64(kl)), k)) {
				t.Errorf("key %d, value %d bytes: quickFind = %v, lens %#x", kl, vl, f, lens)
			}
			pv, hd, err := c.Pin(k)
			if err != nil || !bytes.Equal(pv, v) || len(pv) != vl {
				t.Fatalf("key %d, value %d bytes: Pin = %v, %d bytes, equal %v", kl, vl, err, len(pv), bytes.Equal(pv, v))
			}
			if s := c.Stats(); s.Handles != 1 || s.BytesPinned != int(c.weight(uint64(kl+vl))) {
				t.Errorf("key %d, value %d bytes: stats %+v", kl, vl, s)
			}
			if err := hd.Release(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Delete(k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s := c.Stats(); s.Handles != 0 || s.BytesPinned != 0 || s.Entries != 0 {
		t.Errorf("stats %+v", s)
	}
	verifyT(t, c)
}
