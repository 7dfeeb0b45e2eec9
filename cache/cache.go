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
// it leaves, so no compaction of the pool (another user's commit, on a
// shared pool) moves an entry under a reader, and the cache reads its
// entries in place through the pool's fixed base address: a Get touches an
// index bucket and the bytes, and nothing else but counters that stay in
// the processor's caches (a Pin touches the entry, too). A latch the cache
// holds is not a pin: pins are the users' (Pin, Handle.Release), counted in
// the entry.
//
// The metadata is off the Go heap, in vmem reservations that grow in place:
// an entry table of 32-byte plain structs (state word, hash, offset, key and
// value lengths) indexed by an entry id, the refs beside it, an
// open-addressing hash index of cache-line buckets of three 16-byte slots
// (tag, id and where the key and value are; see index), the
// eviction policy's metadata, keyed by the same ids, a table of handle slots
// and per-P counters. The Go heap holds the Cache struct and a few fixed
// objects, nothing per entry, so the collector's work does not grow with
// the cache. The pool, the entry tables, the index and the policy form a
// store (see store), which Resize may replace.
//
// # States of an entry
//
// free (id on the free stack) -> live (in the index and the policy; readable)
// -> free again when deleted, replaced or evicted with no pins, or -> gone
// when that happens with pins out: out of the index and the policy but still
// readable through its views and still counted in the budget, until the last
// pin is released, which frees it. Freeing advances the entry's generation,
// so a reader that saw the old occupant notices; an id at its last
// generation is retired. (Every 2048th release of an entry's own handle
// advances its generation too, short of the last: see ownReleased.)
//
// # Budget
//
// Bytes are counted as the pool counts them (rounded to its alignment): used
// (live entries) + gone (pinned entries already deleted) + promised (bytes a
// Set has made room for and is copying in) never exceeds the budget. Set
// takes the key's old entry out (unless it overwrites an unpinned value of
// the same length in place: see Set), asks the policy to admit the new one,
// and makes room before it reserves, by evicting the policy's victims; an
// entry with pins is never a victim (the policy parks it until its last
// release). If nothing unpinned is left, Set fails with ErrFull and stores
// nothing, so the budget is never overshot; bytes promised to other Sets in
// flight are not pinned: Set (and Resize) wait for those Sets to end, and may
// then evict their entries. A cache with its own pool sizes the pool to the
// budget and reserves without the pool's slow path, so the pool, too, never
// holds more: where its free space is in pieces too small, the cache evicts
// more rather than let the pool grow or compact.
//
// # Giving memory back
//
// Resize down evicts to the new budget; a cache with its own pool then
// gives the freed memory to the operating system at once. With no pins out
// it rebuilds: it copies the survivors into a new store (a pool of the new
// size, fresh tables, index and policy, fed the survivors in the old
// policy's eviction order) and retires the old one, whose pages are released
// at once; so the metadata shrinks with the entries, not just the bytes.
// With pins out, pinned entries cannot move: it lets the pool compact the
// unpinned ones in place (dropping and retaking its latches around the pool's
// compaction) and shrinks the pool and the index.
//
// # Concurrency
//
// Writers (Set, Delete, eviction, Resize, Close) take mu. Get, Has and Pin
// take no lock: a reader loads the moves word and the current store, probes
// the index, compares the key and copies the value, and keeps the result
// only if what it went by and the moves word are unchanged afterwards, as in
// a seqlock. Get goes by the key's index bucket, whose sequence number any
// change of its slots makes odd and then advances (see index); Pin and Has,
// and Get for what the slot does not locate, go by the entry's word, whose
// generation and state change when the entry does. Readers write no
// shared memory but per-P counters (and what the policy's hit records), so
// hits scale with cores. Pin's fast path goes by the bucket, as Get does,
// and takes a hazard pin: a slot in its P's line of a small table naming
// the entry, which every writer about to act on the entry promotes to a pin
// in the entry's word (see hazLine), so it reads no more memory than Get.
// Otherwise Pin adds a pin to the entry's word with a CAS,
// which fails if the occupant changed; a writer frees an entry only by
// CASing its word from no pins, so a pin and a free never both succeed.
// The first of an entry's concurrent pins takes the entry's own handle, a
// bit of the same word, in the same CAS, and gives it back in the CAS that
// drops the pin, so a lone pin costs one atomic each way. Each further pin
// takes a handle slot of its own, with a generation, so a Handle released
// twice is caught even while other pins hold the entry; the own handle's
// ticket, advanced at each release, does the same for it (see Handle).
//
// The moves word is odd while a compaction or rebuild moves entries: readers
// wait, and a pin taken meanwhile is undone. A reader tells the policy of a
// hit or a miss only inside a pinned section (proc.Pin) that first checks
// the moves word, so a rebuild or Close, having changed that word, waits for
// the sections in flight (proc.Quiesce) and may then free the old policy at
// once; the old tables stay mapped (their pages released) until no reader
// holds the old store.
//
// A cache on a shared pool is one of its reclaimers: another user's commit
// that finds the pool full asks it to evict. The pool calls reclaimers
// without its lock, and the cache never makes a reservation that may ask
// them while holding mu, so a Set whose reservation makes the pool ask the
// same cache for room cannot deadlock. The rule: under mu the cache
// reserves only with TryReserve, which never asks the reclaimers and holds
// the pool's lock only while it places (the pool calls nobody under it);
// Reserve is called only without mu; a reclaimer, for its part, must not
// reserve in the pool that calls it.
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
	hseed     [2]uint64             // for shorter ones: one per operand of mix
	pcs       offTable[pstate]
	hslots    offTable[hslot]
	haz       *hazards             // Pin's hazard pins; see hazLine
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
	poolMax    int64  // the most the pool can hold
	used       int64  // bytes of live entries
	gone       int64  // bytes of gone entries (deleted while pinned)
	promised   int64  // bytes Sets have made room for and are reserving
	reclaiming int64  // of those, bytes of Sets in a shared pool's slow path (see sharedReserve)
	count      uint64 // live entries: written under mu (fence.StoreRelease), read with atomic loads
	maxEntries uint64
	ops        counts
	sinceCheck uint32 // mutations since the checked build last verified
	closed     bool
	final      Stats
	sets       sync.WaitGroup // Sets between their first and last step
	settled    sync.Cond      // on mu: a Set's promise ended, or a Resize stopped waiting for them
	shrinking  int            // Resizes waiting for promises to end: Sets promise no more meanwhile

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
		return nil, fmt.Errorf("%s: new: %w", c.label, openError(err))
	}
	return c, nil
}

// openError adds the cache's own error to one of open's, so that callers
// test for the cache's errors alone: ErrClosed for a shared pool that was
// closed; ErrTooLarge for the rest, which all come from memory that could
// not be had for the budget (a pool or table the OS would not reserve, a
// capacity that overflows).
func openError(err error) error {
	if errors.Is(err, pool.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return fmt.Errorf("%w: %w", ErrTooLarge, err)
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
	c.hseed = [2]uint64{maphash.Comparable(c.seed, 0), maphash.Comparable(c.seed, 1)}
	defer func() {
		if err != nil {
			c.pcs.close()
			c.hslots.close()
			if closePool {
				_ = p.Close()
			}
		}
	}()
	if err = c.pcs.reserve(maxPs+1, c.label+" per-P"); err == nil {
		err = c.pcs.grow(maxPs + 1)
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
	c.settled.L = &c.mu
	c.handles.init()
	c.haz = new(hazards)
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
