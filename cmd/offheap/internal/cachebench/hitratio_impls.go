// The implementations of the hit-ratio cases, each behind a replayer: a
// cache of a capacity in entries that a trace is replayed against with
// demand fill (Get; on a miss, Set).

package cachebench

import (
	"encoding/binary"
	"errors"
	"fmt"

	theine "github.com/Yiling-J/theine-go"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/hashicorp/golang-lru/arc/v2"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/maypok86/otter/v2"

	"github.com/offheap/offheap/cache"
)

// HitImpls are the implementations of the hit-ratio cases, offheap's first:
// those that can be sized in entries.
var HitImpls = []string{"offheap", "otter", "theine", "ristretto", "lru", "2q", "arc", "sieve", "s3fifo", "opteryx-lruk"}

// replayer is one cache under replay.
type replayer interface {
	// access looks key up and, on a miss, stores it; it reports a hit.
	access(key uint64) bool
	// close lets the cache go and returns the first error a store met.
	close() error
}

// newReplayer makes impl's cache of capacity entries.
func newReplayer(impl string, capacity int) (replayer, error) {
	switch impl {
	case "offheap":
		return newOffheapReplay(capacity)
	case "otter":
		return newOtterReplay(capacity)
	case "theine":
		return newTheineReplay(capacity)
	case "ristretto":
		return newRistrettoReplay(capacity)
	case "lru":
		c, err := simplelru.NewLRU[uint64, uint64](capacity, nil)
		return lruReplay{c}, err
	case "2q":
		c, err := lru.New2Q[uint64, uint64](capacity)
		return twoQReplay{c}, err
	case "arc":
		c, err := arc.NewARC[uint64, uint64](capacity)
		return arcReplay{c}, err
	case "sieve":
		return newSieve(capacity), nil
	case "s3fifo":
		return newS3FIFO(capacity), nil
	case "opteryx-lruk":
		return newLRUK(capacity), nil
	}
	return nil, fmt.Errorf("unknown impl %q", impl)
}

// minCapacity is the smallest capacity impl can be made with: golang-lru's
// 2Q keeps a ghost of half its size, which must hold an entry.
func minCapacity(impl string) int {
	if impl == "2q" {
		return 2
	}
	return 1
}

// replay runs keys against r and returns the hits.
func replay(r replayer, keys []uint64) int {
	hits := 0
	for _, k := range keys {
		if r.access(k) {
			hits++
		}
	}
	return hits
}

// Offheap's entries in the hit-ratio cases: the key, 8 bytes big-endian,
// and a value of 8 bytes (the key again).
const (
	hitKeySize   = 8
	hitValueSize = 8
)

// offheapReplay drives a cache.Cache whose byte budget is capacity times
// the bytes the cache charges for one entry of the sizes above, so that it
// holds exactly capacity entries when full.
type offheapReplay struct {
	c   *cache.Cache
	key [hitKeySize]byte
	buf []byte
	err error
}

func newOffheapReplay(capacity int) (*offheapReplay, error) {
	per, err := offheapEntryBytes()
	if err != nil {
		return nil, err
	}
	c, err := cache.New(capacity*per, nil)
	if err != nil {
		return nil, err
	}
	return &offheapReplay{c: c, buf: make([]byte, 0, hitValueSize)}, nil
}

// offheapEntryBytes returns the bytes of budget one entry of the hit-ratio
// cases takes, as a cache reports them after storing one.
func offheapEntryBytes() (int, error) {
	c, err := cache.New(1<<12, nil)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Set(make([]byte, hitKeySize), make([]byte, hitValueSize)); err != nil {
		return 0, err
	}
	return c.Stats().BytesUsed, nil
}

func (r *offheapReplay) access(key uint64) bool {
	binary.BigEndian.PutUint64(r.key[:], key)
	if _, ok := r.c.Get(r.buf[:0], r.key[:]); ok {
		return true
	}
	// The admission policy may refuse the entry: that is a miss like any
	// other. Anything else is a fault of the replay.
	if err := r.c.Set(r.key[:], r.key[:]); err != nil && !errors.Is(err, cache.ErrRejected) && r.err == nil {
		r.err = err
	}
	return false
}

func (r *offheapReplay) close() error { return errors.Join(r.err, r.c.Close()) }

// otterReplay runs tasks on the calling goroutine and sizes its table up
// front, as otter's own simulator does.
type otterReplay struct{ c *otter.Cache[uint64, uint64] }

func newOtterReplay(capacity int) (otterReplay, error) {
	c, err := otter.New(&otter.Options[uint64, uint64]{
		MaximumSize:     capacity,
		InitialCapacity: capacity,
		Executor:        func(fn func()) { fn() },
	})
	return otterReplay{c}, err
}

func (r otterReplay) access(key uint64) bool {
	if _, ok := r.c.GetIfPresent(key); ok {
		return true
	}
	r.c.Set(key, key)
	return false
}

func (r otterReplay) close() error { r.c.StopAllGoroutines(); return nil }

// theineReplay waits after each Set for theine to apply it to its policy.
type theineReplay struct{ c *theine.Cache[uint64, uint64] }

func newTheineReplay(capacity int) (theineReplay, error) {
	c, err := theine.NewBuilder[uint64, uint64](int64(capacity)).Build()
	return theineReplay{c}, err
}

func (r theineReplay) access(key uint64) bool {
	if _, ok := r.c.Get(key); ok {
		return true
	}
	r.c.Set(key, key, 1)
	r.c.Wait()
	return false
}

func (r theineReplay) close() error { r.c.Close(); return nil }

// ristrettoReplay waits after each Set until ristretto has applied its
// buffered writes, so the Set counts before the next request; its buffer
// of Gets is left to drain as ristretto drains it. Cost 1 per entry with
// IgnoreInternalCost makes MaxCost a count of entries.
type ristrettoReplay struct {
	c *ristretto.Cache[uint64, uint64]
}

func newRistrettoReplay(capacity int) (ristrettoReplay, error) {
	c, err := ristretto.NewCache(&ristretto.Config[uint64, uint64]{
		NumCounters:        10 * int64(capacity),
		MaxCost:            int64(capacity),
		BufferItems:        64,
		IgnoreInternalCost: true,
	})
	return ristrettoReplay{c}, err
}

func (r ristrettoReplay) access(key uint64) bool {
	if _, ok := r.c.Get(key); ok {
		return true
	}
	r.c.Set(key, key, 1)
	r.c.Wait()
	return false
}

func (r ristrettoReplay) close() error { r.c.Close(); return nil }

type lruReplay struct {
	c *simplelru.LRU[uint64, uint64]
}

func (r lruReplay) access(key uint64) bool {
	if _, ok := r.c.Get(key); ok {
		return true
	}
	r.c.Add(key, key)
	return false
}

func (r lruReplay) close() error { return nil }

type twoQReplay struct {
	c *lru.TwoQueueCache[uint64, uint64]
}

func (r twoQReplay) access(key uint64) bool {
	if _, ok := r.c.Get(key); ok {
		return true
	}
	r.c.Add(key, key)
	return false
}

func (r twoQReplay) close() error { return nil }

type arcReplay struct{ c *arc.ARCCache[uint64, uint64] }

func (r arcReplay) access(key uint64) bool {
	if _, ok := r.c.Get(key); ok {
		return true
	}
	r.c.Add(key, key)
	return false
}

func (r arcReplay) close() error { return nil }
