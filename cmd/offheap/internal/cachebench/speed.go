// The speed cases (get, get-pinned, set-evict, mix-p1, mix-p2): the
// workloads of internal/workload/lookup, which the cache package's Go
// benchmarks share, run by every implementation through an adapter.

package cachebench

import (
	"fmt"
	"math"

	"github.com/VictoriaMetrics/fastcache"
	theine "github.com/Yiling-J/theine-go"
	"github.com/coocood/freecache"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/hashicorp/golang-lru/arc/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/maypok86/otter/v2"

	"github.com/offheap/offheap/cache"
	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/lookup"
)

// SpeedImpls are the implementations of the speed cases, offheap's first.
var SpeedImpls = []string{"offheap", "otter", "theine", "ristretto", "lru", "2q", "arc", "fastcache", "freecache"}

// SpeedCases are the speed cases, in their order.
var SpeedCases = []string{"get", "get-pinned", "set-evict", "mix-p1", "mix-p2"}

// Entries held in the speed cases, by default and with --quick.
const (
	speedEntries      = 1 << 17
	speedEntriesQuick = 1 << 14
)

// speedTasks plans every speed case for every implementation that has it:
// get-pinned needs a zero-copy read, which fastcache lacks.
func (s *settings) speedTasks(cfg bench.Config) []bench.Task {
	n := s.entries
	if cfg.Quick {
		n = min(n, speedEntriesQuick)
	}
	var ts []bench.Task
	for _, cs := range SpeedCases {
		for _, impl := range SpeedImpls {
			if cs == "get-pinned" && impl == "fastcache" {
				continue
			}
			ts = append(ts, bench.Task{Case: cs, Impl: impl, N: int64(n), MaxReps: 3, Run: func() (bench.Sample, error) {
				return runSpeed(cfg, cs, impl, n)
			}})
		}
	}
	return ts
}

func runSpeed(cfg bench.Config, cs, impl string, n int) (bench.Sample, error) {
	f, ok := newStores[impl]
	if !ok {
		return bench.Sample{}, fmt.Errorf("unknown impl %q", impl)
	}
	var bm lookup.Bench
	var err error
	switch cs {
	case "get":
		bm, err = lookup.Get(f, n)
	case "get-pinned":
		bm, err = lookup.GetPinned(f, n)
	case "set-evict":
		bm, err = lookup.SetEvict(f, n)
	case "mix-p1":
		bm, err = lookup.Mix(f, n, 1)
	case "mix-p2":
		bm, err = lookup.Mix(f, n, 2)
	default:
		err = fmt.Errorf("unknown case %q", cs)
	}
	if err != nil {
		return bench.Sample{}, err
	}
	defer bm.Close()
	smp := bench.GoBench(cfg.BenchTime, bm.Run)
	for i, fig := range smp.Figures { // the harness's own few allocations, spread over millions of ops
		if fig.Metric == "allocs/op" {
			smp.Figures[i].Value = math.Round(fig.Value*100) / 100
		}
	}
	return smp, nil
}

// newStores makes each implementation's store; sizes in bytes are entries
// times the entry's cost in that implementation.
var newStores = map[string]lookup.New{
	"offheap":   newOffheap,
	"otter":     newOtter,
	"theine":    newTheine,
	"ristretto": newRistretto,
	"lru":       func(n int) (lookup.Store, error) { c, err := lru.New[string, []byte](n); return lruStore{c}, err },
	"2q":        func(n int) (lookup.Store, error) { c, err := lru.New2Q[string, []byte](n); return twoQStore{c}, err },
	"arc":       func(n int) (lookup.Store, error) { c, err := arc.NewARC[string, []byte](n); return arcStore{c}, err },
	"fastcache": func(n int) (lookup.Store, error) { return fastStore{fastcache.New(n * fastEntry)}, nil },
	"freecache": func(n int) (lookup.Store, error) { return newFree(n), nil },
}

// Entry costs in bytes of the byte-budget caches: offheap's segment (key
// and value rounded to the pool's 8-byte alignment); fastcache's key, value
// and 4-byte header; freecache's key, value and 24-byte header.
const (
	offheapEntry = (lookup.KeySize + lookup.ValueSize + 7) &^ 7
	fastEntry    = lookup.KeySize + lookup.ValueSize + 4
	freeEntry    = lookup.KeySize + lookup.ValueSize + 24
)

type offheapStore struct{ c *cache.Cache }

func newOffheap(n int) (lookup.Store, error) {
	c, err := cache.New(n*offheapEntry, nil)
	return offheapStore{c}, err
}

func (s offheapStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) { return s.c.Get(dst, k.B) }
func (s offheapStore) Set(k *lookup.Key, v []byte)                  { _ = s.c.Set(k.B, v) }
func (s offheapStore) Close()                                       { _ = s.c.Close() }

// View is Pin, a read of the view, and Release.
func (s offheapStore) View(k *lookup.Key) int {
	v, h, err := s.c.Pin(k.B)
	if err != nil {
		return -1
	}
	x := int(v[0])
	_ = h.Release()
	return x
}

type otterStore struct{ c *otter.Cache[string, []byte] }

func newOtter(n int) (lookup.Store, error) {
	c, err := otter.New(&otter.Options[string, []byte]{MaximumSize: n})
	return otterStore{c}, err
}

func (s otterStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) {
	v, ok := s.c.GetIfPresent(k.S)
	return append(dst, v...), ok
}
func (s otterStore) Set(k *lookup.Key, v []byte) { s.c.Set(k.S, v) }
func (s otterStore) Close()                      { s.c.InvalidateAll(); s.c.StopAllGoroutines() }
func (s otterStore) View(k *lookup.Key) int      { return first(s.c.GetIfPresent(k.S)) }

type theineStore struct{ c *theine.Cache[string, []byte] }

func newTheine(n int) (lookup.Store, error) {
	c, err := theine.NewBuilder[string, []byte](int64(n)).Build()
	return theineStore{c}, err
}

func (s theineStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) {
	v, ok := s.c.Get(k.S)
	return append(dst, v...), ok
}
func (s theineStore) Set(k *lookup.Key, v []byte) { s.c.Set(k.S, v, 1) }
func (s theineStore) Close()                      { s.c.Close() }
func (s theineStore) View(k *lookup.Key) int      { return first(s.c.Get(k.S)) }

type ristrettoStore struct {
	c *ristretto.Cache[string, []byte]
}

func newRistretto(n int) (lookup.Store, error) {
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{NumCounters: 10 * int64(n), MaxCost: int64(n), BufferItems: 64})
	return ristrettoStore{c}, err
}

func (s ristrettoStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) {
	v, ok := s.c.Get(k.S)
	return append(dst, v...), ok
}
func (s ristrettoStore) Set(k *lookup.Key, v []byte) { s.c.Set(k.S, v, 1) }
func (s ristrettoStore) Close()                      { s.c.Close() }
func (s ristrettoStore) View(k *lookup.Key) int      { return first(s.c.Get(k.S)) }

// Wait lets ristretto apply its buffered Sets, so a filled store holds them.
func (s ristrettoStore) Wait() { s.c.Wait() }

type lruStore struct{ c *lru.Cache[string, []byte] }

func (s lruStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) {
	v, ok := s.c.Get(k.S)
	return append(dst, v...), ok
}
func (s lruStore) Set(k *lookup.Key, v []byte) { s.c.Add(k.S, v) }
func (s lruStore) Close()                      { s.c.Purge() }
func (s lruStore) View(k *lookup.Key) int      { return first(s.c.Get(k.S)) }

type twoQStore struct {
	c *lru.TwoQueueCache[string, []byte]
}

func (s twoQStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) {
	v, ok := s.c.Get(k.S)
	return append(dst, v...), ok
}
func (s twoQStore) Set(k *lookup.Key, v []byte) { s.c.Add(k.S, v) }
func (s twoQStore) Close()                      { s.c.Purge() }
func (s twoQStore) View(k *lookup.Key) int      { return first(s.c.Get(k.S)) }

type arcStore struct{ c *arc.ARCCache[string, []byte] }

func (s arcStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) {
	v, ok := s.c.Get(k.S)
	return append(dst, v...), ok
}
func (s arcStore) Set(k *lookup.Key, v []byte) { s.c.Add(k.S, v) }
func (s arcStore) Close()                      { s.c.Purge() }
func (s arcStore) View(k *lookup.Key) int      { return first(s.c.Get(k.S)) }

type fastStore struct{ c *fastcache.Cache }

func (s fastStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) { return s.c.HasGet(dst, k.B) }
func (s fastStore) Set(k *lookup.Key, v []byte)                  { s.c.Set(k.B, v) }
func (s fastStore) Close()                                       { s.c.Reset() }

// freeStore copies with GetWithBuf, into dst's spare capacity, and reads
// in place with GetFn, which hands its callback the value under the
// segment's lock: freecache's zero-copy read. The callback is made once, so
// a View allocates nothing; View (the get-pinned case, one goroutine) is
// not for concurrent use.
type freeStore struct {
	c     *freecache.Cache
	first *int
	peek  func([]byte) error
}

func newFree(n int) lookup.Store {
	first := new(int)
	return freeStore{c: freecache.NewCache(n * freeEntry), first: first,
		peek: func(v []byte) error { *first = int(v[0]); return nil }}
}

func (s freeStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) {
	v, err := s.c.GetWithBuf(k.B, dst[len(dst):])
	if err != nil {
		return dst, false
	}
	return append(dst, v...), true // v is dst's tail when it had room: the append copies nothing then
}
func (s freeStore) Set(k *lookup.Key, v []byte) { _ = s.c.Set(k.B, v, 0) }
func (s freeStore) Close()                      { s.c.Clear() }

func (s freeStore) View(k *lookup.Key) int {
	if s.c.GetFn(k.B, s.peek) != nil {
		return -1
	}
	return *s.first
}

// first returns a found value's first byte, or -1.
func first(v []byte, ok bool) int {
	if !ok {
		return -1
	}
	return int(v[0])
}
