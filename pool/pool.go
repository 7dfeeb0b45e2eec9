// Package pool is a segment memory pool after Opteryx's MemoryPool: Commit
// copies bytes in and returns a Ref, Read copies them back out, Latch hands out
// a zero-copy view pinned until Unlatch, Release frees the segment, and Compact
// slides free space together. The memory is one vmem reservation the garbage
// collector never sees; it grows in place and never moves, so a latched view
// stays valid across growth and compaction.
//
// Every operation is O(1) in the number of live segments (Commit is amortized
// O(1): a commit that needs compaction pays for it), Read and Latch take no
// lock, and a steady state allocates nothing on the Go heap.
package pool

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/vmem"
)

// Errors returned by the pool, wrapped with context; test for them with errors.Is.
var (
	ErrFull       = errors.New("full")                                      // no room for the commit, even after compaction and growth
	ErrTooLarge   = errors.New("larger than the pool can ever hold")        // more than MaxCapacity (or the capacity of a fixed pool)
	ErrUnknownRef = errors.New("unknown or released ref")                   // zero, stale, foreign or already released
	ErrNotLatched = errors.New("segment not latched")                       // Unlatch without a Latch
	ErrBusy       = errors.New("busy")                                      // latches outstanding, or a Reserve not yet published
	ErrClosed     = errors.New("closed")                                    // use after Close
	ErrInvalid    = errors.New("invalid argument")                          // bad options or sizes
	ErrLeaked     = errors.New("closed with live segments (checked build)") // Close found segments never released
)

// Ref is a handle to a segment; the zero Ref is never valid. It packs the
// segment's slot index (plus one) in its low 32 bits and the slot's
// generation in its high 32 bits. A slot's generation counts the segments it
// has held, so a Ref whose segment was released is recognised even after its
// slot holds a newer segment (a slot retires before its generation would
// come round again).
//
// Every pool draws its slots' first generation at random, so a Ref of
// another pool is recognised as foreign unless it happens to carry the
// generation of a segment in the same slot of this one: each use of a
// foreign Ref is rejected, with ErrUnknownRef and nothing changed, with
// probability at least 1 - 2^-32 (one miss in about 4.3 billion), whatever
// the two pools did; two pools used alike take each other's Refs only if
// they drew the same first generation.
type Ref uint64

func makeRef(i uint32, gen uint32) Ref { return Ref(uint64(gen)<<32 | uint64(i) + 1) }

// index returns the slot index; the zero Ref wraps to an index no table reaches.
func (r Ref) index() uint32 { return uint32(r) - 1 }
func (r Ref) gen() uint32   { return uint32(r >> 32) }

// String formats r as index.generation, and the zero Ref as 0.
func (r Ref) String() string {
	if r == 0 {
		return "0"
	}
	return fmt.Sprintf("%d.%d", r.index(), r.gen())
}

// Options tune a Pool. A nil *Options means the zero value.
type Options struct {
	Alignment   int    // start offset and rounded length of every segment, and New rounds the capacity and MaxCapacity up to it; power of two; 0 means 8 (addresses are aligned too, up to the page size)
	MaxCapacity int    // > capacity: the pool may grow in place up to this; 0: fixed size
	Name        string // labels errors and stats
}

// Segment describes one segment: its offset from the start of the pool's
// memory, its length as committed, and how many latches it holds.
type Segment struct{ Offset, Len, Latches int }

// Pool is a segment memory pool. All its methods are safe for concurrent use.
//
// # Memory
//
// The pool's bytes are one vmem.Region reserved at MaxCapacity and made ready
// up to the current capacity; growth makes more of it ready in place, so the
// base address is fixed from New to Close. Offsets are relative to that base.
//
// # Metadata
//
// Each segment, and each hole, is a slot in a table of plain 40-byte structs
// (see slot) kept in a second vmem region: it holds no Go pointers, so the
// garbage collector never scans it, and it too grows in place, so lock-free
// readers can index it at any time. A Ref is a slot index and a generation;
// releasing a segment bumps its slot's generation, so stale Refs fail, and
// each pool starts its generations at a random number, so other pools'
// Refs fail (see Ref).
// Unused slots form a stack. The table is reserved for every segment and
// hole a full pool can have, plus 2^20 zero-length segments; a commit that
// finds no slot left fails with ErrFull.
//
// # Free space
//
// The extents (segments and holes) that cover [0, top) are linked to their
// physical neighbours in address order, so a release coalesces with adjacent
// holes in O(1); [top, capacity) is never-used space that commits take by
// bumping top, and top retreats when the last extent is released. Holes are
// kept in a two-level segregated fit (TLSF) index: size classes with
// bitmaps, so finding a hole that fits is a few bit operations. Compaction
// slides unlatched segments down in address order; latched segments stay
// where they are, and the free space before each becomes a hole.
//
// # Concurrency
//
// One word, seq, is both a spin lock and a sequence counter: mutations
// (commit, release, compaction, growth) hold it, making it odd, and advance
// it on unlock. Read takes no lock and writes no shared memory: it loads the
// segment's state word, copies, and keeps the copy only if neither that word's
// generation nor a second counter, moves (changed only by compaction), moved
// meanwhile, as in a seqlock; so copy reads of different segments share no
// written cache line and scale. Latch and Unlatch take no lock either: they
// change the latch count with a CAS on the segment's state word. A writer
// that must not move or free a latched segment loads that word after taking
// the lock, and a latcher loads seq after its CAS, so one of the two always
// sees the other: the latcher then settles under the lock.
//
// Read takes no pin of any kind, so the only latches are the caller's
// (Latch, and Reserve's until its Unlatch): an Unlatch without a latch is
// always ErrNotLatched, and Close is ErrBusy only for the caller's latches.
//
// # Invariants
//
// Checked after mutations in the checked build (see verify):
//   - the extents tile [0, top) in address order; no two holes are adjacent
//     and the last extent is a segment;
//   - every hole is in exactly the TLSF list of its size class, and the
//     bitmaps mark exactly the non-empty lists;
//   - the rounded lengths of the segments in the extent list add up to
//     top - holeBytes, which Stats reports as Used;
//   - a segment with latches never moves; its space is freed only when it is
//     released and its last latch is dropped;
//   - every slot is free (on the stack), a hole, a segment or retired; no
//     segment and no slot on the stack has the retired generation.
type Pool struct {
	// seq is the lock and sequence word. Each group of fields is padded
	// from the next by a cache line, whatever the Pool's alignment, so
	// that readers' fields share no line with what writers write.
	seq uint64
	_   [64]byte

	// Read by lock-free readers: fixed at New, or changed only by growth,
	// compaction and Close.
	base       unsafe.Pointer // start of the data reservation
	slots      []slot         // the whole slot reservation; only [0, slotsReady) is ready
	counters   []pcounter     // per-P operation counters, in the slot region
	maxCap     int            // the most bytes the pool can hold
	alignMask  uint64         // alignment - 1
	alignLog   uint           // log2(alignment)
	firstGen   uint32         // every slot's first generation: random (see Ref)
	name       string
	tryFull    error // TryReserve's ErrFull, made once: it allocates nothing
	data       *vmem.Region
	meta       *vmem.Region
	dataReady  uint64 // atomic: bytes of the data region that are mapped
	slotsReady uint64 // atomic: slots that are mapped
	moves      uint64 // atomic: see movesActive
	overflow   overflowCounts
	_          [64]byte

	// Everything below is guarded by the lock; what every commit and
	// release touches comes first, on as few cache lines as possible.
	capacity    uint64 // bytes usable: [0, capacity)
	top         uint64 // end of the last extent
	first, last uint32 // ends of the extent list, or none
	freeSlot    uint32 // top of the free-slot stack, or none
	nslots      uint32 // slots ever used: [0, nslots)
	retired     int    // slots at their last generation, never reused
	commits     int    // Commit and Reserve calls that succeeded
	releases    int    // Release calls that succeeded
	free        tlsf   // its first word, the first-level bitmap, is hot
	holeBytes   uint64 // bytes in holes
	holes       int    // number of holes
	pending     int    // released segments waiting for their last latch
	st          counts
	mutations   uint64      // since the last invariant check (checked build)
	final       Stats       // what Stats returns after Close
	reclaimers  []Reclaimer // see reclaim.go; replaced, never changed in place
}

// counts are the colder operation counters kept under the lock.
type counts struct {
	failedCommits, compactions, bytesMoved, grows int
}

const (
	defaultAlignment = 8
	// zeroLengthSlots is how many slots, beyond those that segments and holes
	// of a full pool need, the table reserves for zero-length segments.
	zeroLengthSlots = 1 << 20
	// initialSlots is the slot table's first ready size.
	initialSlots = 1024
)

// New returns a pool of capacity bytes, rounded up to a multiple of the
// alignment (as MaxCapacity is). opts may be nil.
func New(capacity int, opts *Options) (*Pool, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	align, capacity, maxCap, err := validate(capacity, o)
	if err != nil {
		return nil, err
	}
	p := &Pool{
		maxCap:    maxCap,
		alignMask: uint64(align - 1),
		alignLog:  uint(log2(uint64(align))),
		firstGen:  rand.Uint32(),
		name:      o.Name,
		capacity:  uint64(capacity),
		first:     none, last: none, freeSlot: none,
	}
	p.tryFull = fmt.Errorf("%s: try reserve: %w", label(p.name), ErrFull)
	p.free.init()
	if err := p.mapRegions(capacity); err != nil {
		return nil, p.sizeError("new", capacity, err)
	}
	return p, nil
}

// validate checks New's arguments and returns the alignment and the
// capacity and MaxCapacity rounded up to it. A segment takes its length
// rounded up to the alignment, so a capacity that was not a multiple of it
// would end in a tail that Stats counts as free and no segment can use.
func validate(capacity int, o Options) (align, c, maxCap int, err error) {
	align = o.Alignment
	if align == 0 {
		align = defaultAlignment
	}
	switch {
	case capacity <= 0:
		err = fmt.Errorf("capacity %d is not positive", capacity)
	case align < 0 || align&(align-1) != 0:
		err = fmt.Errorf("alignment %d is not a power of two", o.Alignment)
	case o.MaxCapacity != 0 && o.MaxCapacity < capacity:
		err = fmt.Errorf("MaxCapacity %d is neither 0 nor >= capacity %d", o.MaxCapacity, capacity)
	case capacity > math.MaxInt-(align-1):
		err = fmt.Errorf("capacity %d rounded up to alignment %d overflows int", capacity, align)
	case o.MaxCapacity > math.MaxInt-(align-1):
		err = fmt.Errorf("MaxCapacity %d rounded up to alignment %d overflows int", o.MaxCapacity, align)
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: new: %v: %w", label(o.Name), err, ErrInvalid)
	}
	up := func(n int) int { return (n + align - 1) &^ (align - 1) }
	return align, up(capacity), up(max(capacity, o.MaxCapacity)), nil
}

// mapRegions reserves the data and slot regions and makes their first
// parts ready. Its errors carry the OS cause without vmem's wrapping (see
// cause); a failed reservation also names its size, which is MaxCapacity's
// and not the capacity New reports.
func (p *Pool) mapRegions(capacity int) error {
	units := uint64(p.maxCap) >> p.alignLog
	maxSlots := min(2*units+2+zeroLengthSlots, math.MaxUint32-1)
	var err error
	if p.data, err = vmem.Reserve(p.maxCap, &vmem.Options{Name: "pool " + p.name}); err != nil {
		return fmt.Errorf("reserving %d bytes: %w", p.maxCap, cause(err))
	}
	if err = p.data.Grow(capacity); err == nil {
		p.meta, err = vmem.Reserve(countersSize+int(maxSlots)*slotSize, &vmem.Options{Name: "pool slots " + p.name})
	}
	if err == nil {
		err = p.meta.Grow(countersSize + initialSlots*slotSize)
	}
	if err != nil {
		p.unmap()
		return cause(err)
	}
	p.base = p.data.Base()
	p.counters, p.slots = metaTables(p.meta, int(maxSlots))
	p.dataReady = uint64(p.data.Len())
	p.slotsReady = uint64((p.meta.Len() - countersSize) / slotSize)
	return nil
}

func (p *Pool) unmap() {
	if p.data != nil {
		_ = p.data.Close()
	}
	if p.meta != nil {
		_ = p.meta.Close()
	}
}

// label names a pool in errors: "pool", or pool "name" if it has one.
func label(name string) string {
	if name == "" {
		return "pool"
	}
	return "pool " + strconv.Quote(name)
}

// cause strips vmem's wrapping off err, which pool wraps with its own
// context: the innermost error, a vmem sentinel or an OS error.
func cause(err error) error {
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(err) {
		err = u
	}
	return err
}

// sizeError wraps err with the pool, the operation and its size.
func (p *Pool) sizeError(op string, n int, err error) error {
	return fmt.Errorf("%s: %s %d bytes: %w", label(p.name), op, n, err)
}

// errorf wraps err with the pool, the operation and the ref.
func (p *Pool) errorf(op string, ref Ref, err error) error {
	return fmt.Errorf("%s: %s ref %v: %w", label(p.name), op, ref, err)
}

// Close frees the pool's memory. With latches outstanding it returns ErrBusy
// and the pool stays usable; after it, every method returns ErrClosed. In
// the checked build a Close that finds segments never released closes the
// pool and reports them with ErrLeaked.
//
// The memory goes back to the operating system at once; the address-space
// reservation is unmapped when the Pool becomes unreachable, because a
// lock-free Read that raced with Close may still be copying from it.
func (p *Pool) Close() error {
	h, ok := p.lock()
	if !ok {
		return fmt.Errorf("%s: close: %w", label(p.name), ErrClosed)
	}
	if n := p.latchedSegments(); n > 0 {
		p.unlock(h)
		return fmt.Errorf("%s: close: %d segments latched: %w", label(p.name), n, ErrBusy)
	}
	live, bytes := p.liveSegments(), p.usedBytes()
	p.final = p.statsLocked()
	p.final.Capacity, p.final.Used, p.final.Free, p.final.UsedSegments = 0, 0, 0, 0
	p.final.FreeSegments, p.final.LargestFree, p.final.Fragmentation, p.final.PendingReleases, p.final.MetaBytes = 0, 0, 0, 0, 0
	atomic.OrUint64(&p.moves, movesClosed) // before the memory goes: readers then retry and fail
	p.unlockClosed(h)
	// Readers that loaded the state before Close may still be copying out
	// of the regions, so their pages go back to the OS now and the regions
	// are unmapped when the Pool is unreachable (at once in the checked
	// build, where readers always take the lock).
	_ = vmem.Retire(p, p.data, p.meta)
	if check.On && live > 0 {
		return fmt.Errorf("%s: close: %d live segments, %d bytes: %w", label(p.name), live, bytes, ErrLeaked)
	}
	return nil
}

// latchedSegments counts segments with latches, scanning the table. Callers hold the lock.
func (p *Pool) latchedSegments() int {
	n := 0
	for i := range p.nslots {
		if w := p.slot(i).loadWord(); stateOf(w) == stateUsed && latchesOf(w) > 0 {
			n++
		}
	}
	return n
}

func log2(v uint64) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}
