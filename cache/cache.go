// Package cache is a read cache (a buffer pool) on a pool.Pool: byte keys and
// byte values live in pool segments, off the Go heap, and the index that
// finds them holds no Go pointers either, so a cache of millions of entries
// costs the garbage collector nothing. Get copies a value out; Pin hands out
// a zero-copy view that eviction never touches until its Handle is released.
// A byte budget bounds the segments' bytes, Resize changes it at run time and
// gives memory back to the operating system, and GetOrLoad runs one load per
// missing key however many goroutines miss it.
//
// The design, its states and invariants are described on the Cache type.
package cache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
)

// Errors returned by the cache; test for them with errors.Is. ErrNotFound
// and ErrRejected are returned as they are, unwrapped, so that a miss or a
// rejection allocates nothing; the others are wrapped with context.
var (
	ErrNotFound    = errors.New("not found")                        // Pin of a key the cache does not hold
	ErrRejected    = errors.New("rejected by the admission policy") // Set stored nothing: the policy judged the entry less worth keeping than what it would evict
	ErrFull        = errors.New("no room: the rest is pinned")      // Set or Resize found nothing unpinned left to evict (or, on a shared pool, the pool full)
	ErrEmptyKey    = errors.New("empty key")                        // a key of 0 bytes
	ErrKeyTooLarge = errors.New("key too large")                    // a key longer than MaxKeyLen
	ErrTooLarge    = errors.New("larger than the budget")           // an entry, or a budget, larger than allowed
	ErrReleased    = errors.New("unknown or released handle")       // Release of a zero, stale or already released Handle
	ErrBusy        = errors.New("busy")                             // Close with handles out, or too many pins
	ErrClosed      = errors.New("closed")                           // use after Close
	ErrInvalid     = errors.New("invalid argument")                 // a bad budget, option or loader
)

// MaxKeyLen is the longest key the cache takes.
const MaxKeyLen = 64 << 10

// Options tune a Cache. A nil *Options means the zero value.
type Options struct {
	// Name labels errors and the cache's memory mappings.
	Name string
	// Pool, if set, is a pool the cache shares with other users (an
	// exchange, say): the cache keeps its entries there, within its own
	// budget, and gives them back when another user's commit finds the pool
	// full (see pool.Reclaimer). The caller closes the pool, after the
	// cache. If nil, the cache makes a pool of its own, sized to the budget.
	Pool *pool.Pool
	// MaxBudget is the largest budget Resize may set; 0 means the budget
	// given to New. The cache reserves address space (not memory) for it.
	MaxBudget int
	// MaxEntries bounds the number of entries; 0 means as many as
	// MaxBudget holds at the smallest entry size. Address space for the
	// index is reserved for it.
	MaxEntries int
}

// Cache is a read cache on a pool. All its methods are safe for concurrent use.
//
// # Memory
//
// Each entry is one pool segment holding the key and then the value. The
// cache holds every segment latched from the Set that made it to the moment
// it leaves, so the pool's compaction never moves an entry under a reader,
// and the cache reads its entries in place through the pool's fixed base
// address. A latch the cache holds is not a pin: pins are the users' (Pin,
// Handle.Release) and are counted in the entry.
//
// The metadata is off the Go heap, in vmem reservations that grow in place:
// an entry table of 32-byte plain structs (state word, hash, offset, key and
// value lengths) indexed by an entry id, the refs beside it, an
// open-addressing hash index of 8-byte slots (tag and id; see index), a table
// of handle slots, per-P counters, and the eviction policy's metadata, keyed
// by the same ids. The Go heap holds the Cache struct and nothing per entry.
//
// # States of an entry
//
// free (id on the free stack) -> live (in the index and the policy; readable)
// -> free again when deleted, replaced or evicted with no pins, or -> gone
// when that happens with pins out: out of the index and the policy but still
// readable through its views and still counted in the budget, until the last
// pin is released, which frees it. Freeing advances the entry's generation, so a
// reader that saw the old occupant notices.
//
// # Budget
//
// Bytes are counted as the pool counts them (rounded to its alignment):
// used (live entries) + gone (pinned entries already deleted) + promised
// (bytes a Set has made room for and is copying in) never exceeds the budget.
// Set makes room before it reserves, by evicting the policy's victims; an
// entry with pins is never a victim (the policy parks it until its last
// release). If nothing unpinned is left, Set fails with ErrFull and stores
// nothing, so the budget is never overshot. A cache with its own pool sizes
// the pool to the budget, so the pool, too, never holds more.
//
// # Concurrency
//
// Writers (Set, Delete, eviction, Resize, Close) take mu. Get, Has and Pin
// take no lock: a reader probes the index, loads the entry's word, compares
// the key and copies the value, and keeps the result only if the entry's
// generation and state and the moves word are unchanged afterwards, as in a
// seqlock. Readers write no shared memory but per-P counters (and what the
// policy's hit records), so hits scale with cores. Pin adds a pin to the
// entry's word with a CAS, which fails if the occupant changed; a writer
// frees an entry only by CASing its word from no pins, so a pin and a free
// never both succeed. The moves word is odd while a compaction moves entries
// (Resize): readers wait, and a pin taken meanwhile is undone.
//
// A cache on a shared pool is one of its reclaimers: another user's commit
// that finds the pool full asks it to evict. The pool calls reclaimers
// without its lock, and the cache never commits to the pool while holding
// mu, so a Set whose reservation makes the pool ask the same cache for room
// cannot deadlock: the rule is that mu is taken only by code that does not
// reserve, and a reservation is made only without mu.
//
// # Invariants
//
// Checked after mutations in the checked build (see verify):
//   - the index holds exactly the live entries, each under its own hash;
//   - used is the sum of the live entries' weights and equals the policy's
//     used; gone is the sum of the gone entries' weights; used + gone +
//     promised <= budget;
//   - an entry with pins is live or gone, never free; a gone entry has pins;
//   - every id below nextID is live, gone, retired or on the free stack once.
type Cache struct {
	// moves is odd while a compaction or rebuild moves entries;
	// movesClosed once closed.
	moves uint64
	_     [56]byte

	// Read by lock-free readers: fixed at New, or atomic.
	st        atomic.Pointer[store] // the current store; see cur
	seed      maphash.Seed          // for keys longer than shortKey
	hseed     uint64                // for shorter ones
	pcs       offTable[pstate]
	hslots    offTable[hslot]
	isPinned  func(id uint32) bool // c.pinnedForPolicy, made once
	alignMask uint64
	label     string // for errors: `cache "name"` or `cache`
	nameOpt   string // Options.Name
	_         [64]byte

	mu         sync.RWMutex // writers; the checked build's readers too
	owned      bool         // the pool is the cache's own
	rec        *reclaimer   // registered with a shared pool
	budget     int64
	maxBudget  int64
	poolMax    int64 // the most the pool can hold
	used       int64 // bytes of live entries
	gone       int64 // bytes of gone entries (deleted while pinned)
	promised   int64 // bytes Sets have made room for and are reserving
	count      atomic.Int64
	maxEntries uint64
	ops        counts
	sinceCheck uint32 // mutations since the checked build last verified
	closed     bool
	final      Stats
	sets       sync.WaitGroup // Sets between their first and last step

	handles handleStack
	loads   loader
}

// cur returns the current store. Writers hold the lock, so it cannot
// change under them; a lock-free reader loads it once and validates its
// reads against the moves word, which a rebuild changes.
func (c *Cache) cur() *store { return c.st.Load() }

// counts are the operation counters kept under the lock.
type counts struct {
	sets, rejections, evictions, deletes, compactions, rebuilds int
}

const (
	movesActive = 1
	movesClosed = 1 << 63
)

// New returns a cache whose entries may take up to budget bytes of pool
// memory. opts may be nil.
func New(budget int, opts *Options) (*Cache, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Cache{label: "cache"}
	if c.nameOpt = o.Name; o.Name != "" {
		c.label = fmt.Sprintf("cache %q", o.Name)
	}
	maxBudget := max(o.MaxBudget, budget)
	switch {
	case budget <= 0:
		return nil, c.sizeError("new", "budget", budget, ErrInvalid)
	case o.MaxBudget != 0 && o.MaxBudget < budget:
		return nil, c.sizeError("new", "MaxBudget below the budget of", budget, ErrInvalid)
	case o.MaxEntries < 0:
		return nil, c.sizeError("new", "MaxEntries", o.MaxEntries, ErrInvalid)
	}
	c.budget, c.maxBudget = int64(budget), int64(maxBudget)
	if err := c.open(o); err != nil {
		return nil, fmt.Errorf("%s: new: %w", c.label, err)
	}
	return c, nil
}

// open sets up the pool, the store and the per-P and handle tables; on
// failure it gives back what it made.
func (c *Cache) open(o Options) (err error) {
	p, closePool := o.Pool, false
	if c.owned = p == nil; c.owned {
		if p, err = c.newPool(c.budget); err != nil {
			return err
		}
		closePool = true
	}
	pst := p.Stats()
	align := uint64(pst.Alignment)
	c.poolMax = int64(pst.MaxCapacity)
	c.alignMask = align - 1
	c.maxEntries = min(uint64(c.maxBudget)/align, 1<<31)
	if o.MaxEntries > 0 {
		c.maxEntries = min(c.maxEntries, uint64(o.MaxEntries))
	}
	c.seed = maphash.MakeSeed()
	c.hseed = maphash.Comparable(c.seed, 0)
	defer func() {
		if err != nil {
			c.pcs.close()
			c.hslots.close()
			if closePool {
				_ = p.Close()
			}
		}
	}()
	if err = c.pcs.reserve(maxProcs+1, c.label+" per-P"); err == nil {
		err = c.pcs.grow(maxProcs + 1)
	}
	if err == nil {
		err = c.hslots.reserve(maxHandles, c.label+" handles")
	}
	if err != nil {
		return err
	}
	s, err := newStore(p, c.maxEntries, c.budget, c.label)
	if err != nil {
		return err
	}
	c.st.Store(s)
	c.handles.init()
	c.isPinned = c.pinnedForPolicy
	if !c.owned {
		c.rec = &reclaimer{c}
		if err = p.AddReclaimer(c.rec); err != nil {
			s.close()
		}
	}
	return err
}

// newPool makes a pool of the cache's own, of capacity bytes, that may
// grow (only when Resize asks) up to MaxBudget.
func (c *Cache) newPool(capacity int64) (*pool.Pool, error) {
	po := &pool.Options{Name: c.label}
	if c.maxBudget > capacity {
		po.MaxCapacity = int(c.maxBudget)
	}
	return pool.New(int(capacity), po)
}

// sizeError wraps err with the cache, the operation and a size.
func (c *Cache) sizeError(op, what string, n int, err error) error {
	return fmt.Errorf("%s: %s %s %d: %w", c.label, op, what, n, err)
}

// keyError wraps err with the cache, the operation and the key's length.
func (c *Cache) keyError(op string, key []byte, err error) error {
	return fmt.Errorf("%s: %s key of %d bytes: %w", c.label, op, len(key), err)
}

// checkKey returns the error for a key the cache does not take; small
// enough to inline.
func (c *Cache) checkKey(op string, key []byte) error {
	if uint(len(key))-1 >= MaxKeyLen {
		return c.badKey(op, key)
	}
	return nil
}

func (c *Cache) badKey(op string, key []byte) error {
	if len(key) == 0 {
		return c.keyError(op, key, ErrEmptyKey)
	}
	return c.keyError(op, key, ErrKeyTooLarge)
}

// loadMoves returns the moves word.
func (c *Cache) loadMoves() uint64 { return atomic.LoadUint64(&c.moves) }

var _ = check.On
