// Package arena is a small-object allocator in the style of CPython's
// pymalloc, built on vmem, that gives free memory back to the operating system
// at once: empty arenas as soon as they are empty (keeping one spare), and free
// pages inside partly used arenas in small batches. Larger blocks are spans of
// whole pages of a reservation of their own, given back as they are freed.
//
// Alloc returns zeroed memory outside the Go heap; Free takes it back and
// reports a double free (ErrDoubleFree) or a slice the allocator did not hand
// out (ErrForeign) without changing anything, exactly (see Allocator for what
// that covers). Allocator is safe for concurrent use; a Cache is a
// single-owner handle for hot loops that moves blocks to and from the
// Allocator in batches. The design is written at Allocator.
package arena

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
	"github.com/offheap/offheap/vmem"
)

// MaxAlloc is the largest request Alloc accepts.
const MaxAlloc = 1 << 44

// MaxReserve is the most address space Options.Reserve may ask for.
const MaxReserve = 64 << 30

// MaxLargeReserve is the most address space Options.LargeReserve may ask for.
const MaxLargeReserve = 8 << 40

// ArenaSize is the size of an arena: the unit carved from the reservation and
// returned to the OS whole when all its pages are free.
const ArenaSize = 1 << arenaShift

const arenaShift = 20

// Options tune an Allocator. The zero value (or a nil *Options) is ready to use.
type Options struct {
	// Name labels errors and the mapping in /proc/PID/maps.
	Name string
	// Reserve is the address space reserved for arenas, which bounds the bytes
	// of small blocks (up to MaxSmall) live at once; 0 means 32 GiB, the most
	// is MaxReserve. It costs no memory.
	Reserve int
	// LargeReserve is the address space reserved, at the first large Alloc,
	// for blocks above MaxSmall, which bounds their bytes (whole pages each)
	// live at once; 0 means 256 GiB, the most is MaxLargeReserve. It costs
	// no memory.
	LargeReserve int
	// ReleaseBatch is how many free pages inside partly used arenas are held
	// before they go back to the OS together; 0 means 64. Larger batches make
	// cyclic alloc/free cheaper and hold more memory.
	ReleaseBatch int
	// KeepEmpty is how many empty pages each size class keeps for reuse before
	// freeing them; 0 means 1, negative means none.
	KeepEmpty int
}

// Allocator hands out blocks of memory the garbage collector never sees.
//
// # Layout
//
// In pymalloc's terms: an arena is an arena, a page is what pymalloc calls a
// pool, and size classes and blocks are the same.
//
// At New the allocator reserves one range of address space (Options.Reserve)
// and carves 1 MiB arenas from it in address order. An arena is split into
// 4 KiB pages; a page in use serves blocks of one size class. So the
// arena and page of any address are found by arithmetic, and a slice that is
// not at a block start of a page in use is ErrForeign. Requests above
// MaxSmall bytes are spans of whole OS pages from a second reservation (see
// large.go and span.go), given back to the OS when freed.
//
// All metadata is out of band and pointer-free. Per arena, a small fixed
// record on the Go heap (state, count of free pages, list links) and, in a
// second vmem region at a fixed stride, the part that grows with the memory
// served: per page its class, its count of allocated blocks and a state byte
// per block, and the arena's stacks of free pages, dirty (resident) and
// clean (released or never touched). That part goes back to the OS with its
// arena, so the Go heap does not grow with the memory served.
//
// # States
//
// A page is free (class 0; dirty or clean) or in use by one class. A page in
// use is full, partial or empty; partial and empty pages are on their class's
// list, from whose head blocks are taken. When a page's last block is freed,
// up to KeepEmpty empty pages per class stay in use against thrash; other
// pages become free and dirty. Once ReleaseBatch dirty pages are held, their
// pages go back to the OS (MADV_DONTNEED, adjacent pages in one call) and
// they become clean. An arena whose pages are all free is released at once,
// except for one spare kept against thrash. New pages come from the arena
// with the fewest free pages (the fullest), so the others drain and go back:
// arenas sit on per-count lists with a bitmap of non-empty counts, which
// keeps that order in O(1).
//
// # Double frees
//
// A block is allocated to a user, held by a Cache (the user's, or a P's; see
// below), or free in its page, and its state byte says which (state.go);
// blocks held by caches count as allocated in their page. Free moves the
// byte from "user" to "cache" with a compare-and-swap, so what it can tell
// is exact, without the lock and whatever was written into the block:
//
//   - a Free of an address where no block is allocated to a user (a block
//     free or held by a cache, a page or arena not in use, a large span
//     free) is ErrDoubleFree, and changes nothing;
//   - a Free of an address that is not the start of a block, or of a slice
//     reaching past its block, is ErrForeign, and changes nothing;
//   - of two Frees of one block racing each other, exactly one succeeds and
//     the other is ErrDoubleFree;
//   - a stale Free of a block whose address has been handed out again, to a
//     block the stale slice fits in, frees the new owner's block: the
//     allocator keeps no record of owners besides the address, so it cannot
//     tell that Free from the new owner's own (a stale Free of an address
//     that now lies inside another block is ErrForeign).
//
// The compare-and-swap is the price of the third point: one locked
// instruction per Free, which Alloc does not pay (it stores the byte).
//
// # Fast paths
//
// Alloc and Free pin the calling goroutine to its P and use that P's own
// Cache (see pcache.go): a pop or a push with plain loads and stores, and
// Free's compare-and-swap of the state byte. Free takes the block's class
// from the slice's capacity (as Alloc handed it out) rather than from its
// page, whose metadata is one more cache miss: the state byte names the
// class, so a claim made for the wrong class fails, and Free then looks the
// class up in the page. A P's cache is refilled from
// the pages and drained back to them in batches under the lock. Close and
// Purge empty every P's cache after stopping the world for a moment, which
// waits out the calls in flight. The checked build, and the race detector's
// (which cannot see the ownership a pin gives), take the lock for every call
// instead, and make every change of a state byte under it, through a user's
// Cache too. A Cache of the user's own saves the pinning.
//
// # Invariants
//
//   - a page's allocated count equals the blocks whose state is stCached or stUser;
//   - every state byte of a page in use where a block starts holds the page's class and a
//     state; every other state byte, and every one of a page not in use, is 0;
//   - a page is on its class list exactly when it is in use and not full;
//   - an arena is on the count lists exactly when it is active and has 1..pagesPerArena-1 free pages;
//   - released pages are made ready again (vmem Reuse) before they are touched.
//
// These are checked in the offheapcheck build, which also poisons freed blocks.
type Allocator struct {
	mu         sync.Mutex
	bases                   // where the arenas and their metadata start; fixed until Close
	region     *vmem.Region // the arenas
	metaRegion *vmem.Region // the arenas' metadata (arenaMeta), metaStride bytes per arena
	name       string

	carved atomic.Int64    // arenas carved from the reservation so far (published after their metadata)
	closed atomic.Bool     // set by a successful Close
	arenas []arenaInfo     // one per arena of the reservation
	byFree []int32         // head of the list of active arenas with k free pages, or -1
	nonEmp []uint64        // bit k set when byFree[k] is not empty
	spare  int32           // an empty arena kept against thrash, or -1
	gone   []int32         // released arenas, ready to be reused
	dirty  []int32         // arenas that may hold dirty free pages
	ndirty int             // dirty free pages in active arenas
	used   [nClasses]int32 // head of each class's list of pages with free blocks, or -1
	nkeep  [nClasses]int   // empty pages each class keeps in use
	counts [nClasses]classCount
	pcs    [maxProcs]atomic.Pointer[Cache] // per-P caches, set under mu (see pcache.go)
	paused atomic.Bool                     // the fast paths must not use pcs: a sweep is running, or Close succeeded

	lmu          sync.Mutex  // guards large; taken after mu when both are
	large        *largeSpace // nil until the first large Alloc
	largeReserve int

	releaseBatch, keepEmpty int
	releases, releaseErrs   int // calls to vmem Release, and those that failed
	purges                  int
}

// classCount is what the allocator knows of one class's blocks.
type classCount struct {
	blocks int // allocated, including those held by caches
	cached int // held by caches
	pages  int // pages in use
}

// Pages are 4 KiB on every platform, so page arithmetic is constant. Where
// OS pages are larger, free pages go back to the OS a whole OS page at a time
// (see release).
const (
	pageShift     = 12
	pageSize      = 1 << pageShift
	pageMask      = pageSize - 1
	pagesPerArena = ArenaSize / pageSize
)

// osPage is the OS page size: the unit of giving memory back.
var osPage = vmem.PageSize()

// New returns an allocator with its reservation made; opts may be nil.
func New(opts *Options) (*Allocator, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	if o.Reserve == 0 {
		o.Reserve = 32 << 30
	}
	if o.LargeReserve == 0 {
		o.LargeReserve = 256 << 30
	}
	if o.Reserve < ArenaSize || o.Reserve > MaxReserve || o.ReleaseBatch < 0 || o.LargeReserve < osPage || o.LargeReserve > MaxLargeReserve {
		return nil, fmt.Errorf("%s: new with reserve %d bytes, large reserve %d bytes, release batch %d: %w",
			label(o.Name), o.Reserve, o.LargeReserve, o.ReleaseBatch, ErrInvalidSize)
	}
	if o.ReleaseBatch == 0 {
		o.ReleaseBatch = 64
	}
	switch {
	case o.KeepEmpty == 0:
		o.KeepEmpty = 1
	case o.KeepEmpty < 0:
		o.KeepEmpty = 0
	}
	if osPage < pageSize || osPage > maxPageSize {
		return nil, fmt.Errorf("%s: new with OS pages of %d bytes (4 KiB to %d KiB supported): %w", label(o.Name), osPage, maxPageSize>>10, errors.ErrUnsupported)
	}
	nArenas := o.Reserve / ArenaSize
	r, err := vmem.Reserve(nArenas*ArenaSize, &vmem.Options{Name: "arena " + o.Name})
	if err != nil {
		return nil, fmt.Errorf("%s: new: %w", label(o.Name), cause(err))
	}
	a := &Allocator{
		region: r, name: o.Name,
		arenas:       make([]arenaInfo, nArenas),
		byFree:       make([]int32, pagesPerArena+1),
		nonEmp:       make([]uint64, (pagesPerArena+64)/64),
		spare:        -1,
		releaseBatch: o.ReleaseBatch, keepEmpty: o.KeepEmpty,
		largeReserve: o.LargeReserve,
	}
	for i := range a.byFree {
		a.byFree[i] = -1
	}
	for c := range a.used {
		a.used[c] = -1
	}
	mr, err := vmem.Reserve(nArenas*metaStride, &vmem.Options{Name: "arena metadata " + o.Name})
	if err != nil {
		_ = r.Close()
		return nil, fmt.Errorf("%s: new: %w", label(o.Name), cause(err))
	}
	a.metaRegion = mr
	a.base, a.metaBase = r.Base(), mr.Base()
	for pid := range runtime.GOMAXPROCS(0) { // later Ps get theirs on first use
		a.readyCache(pid)
	}
	return a, nil
}

// Alloc returns n zeroed bytes (len and cap n) that the garbage collector
// never sees, valid until they are passed to Free. Alloc(0) returns an empty
// slice that must be freed like any other.
func (a *Allocator) Alloc(n int) ([]byte, error) {
	if perP && uint(n) <= MaxSmall {
		k := classOf(n)
		pid := proc.Pin()
		if uint(pid) < maxProcs && !a.paused.Load() {
			if c := a.pcs[pid].Load(); c != nil {
				if off, ok := c.pop(k); ok {
					proc.Unpin()
					return a.handOut(off, k, n), nil
				}
			}
		}
		proc.Unpin()
	}
	return a.allocSlow(n)
}

// allocSlow is Alloc under the lock: of a large block or a bad size, in the
// checked build, or when this P's cache is empty, which it refills with a
// batch.
func (a *Allocator) allocSlow(n int) ([]byte, error) {
	switch {
	case n < 0 || n > MaxAlloc:
		return nil, a.badSize("alloc", n)
	case n > MaxSmall:
		return a.allocLarge(n)
	}
	k := classOf(n)
	pid := -1
	if perP {
		pid = proc.Pin() // the P this goroutine will most likely stash on
		proc.Unpin()
	}
	var batch [cacheBatch]uintptr
	a.mu.Lock()
	if a.closed.Load() {
		a.mu.Unlock()
		return nil, a.sizeError("alloc", n, ErrClosed)
	}
	want := 1
	if a.readyCache(pid) {
		want = cacheBatch
	}
	got, err := a.takeBlocksOrReclaim(k, batch[:want])
	a.mu.Unlock()
	if err != nil {
		return nil, a.sizeError("alloc", n, err)
	}
	if got > 1 {
		a.stash(k, batch[1:got])
	}
	return a.serve(batch[0], k, n), nil
}

// serve is handOut, but in the builds without per-P caches it changes the
// state byte under the lock (see pcache.go).
func (a *Allocator) serve(off uintptr, c, n int) []byte {
	if !perP {
		a.setStateLocked(off, c, stUser)
		b := a.block(off, n)
		clear(b)
		return b
	}
	return a.handOut(off, c, n)
}

// setStateLocked is setState under the lock: the way of the builds without
// per-P caches (see pcache.go).
func (a *Allocator) setStateLocked(off uintptr, c int, st uint8) {
	a.mu.Lock()
	setState(a.stateAt(off, c), c, st)
	a.mu.Unlock()
}

// badSize says why n is not a size Alloc or Realloc accepts.
func (a *Allocator) badSize(op string, n int) error {
	if n < 0 {
		return a.sizeError(op, n, ErrInvalidSize)
	}
	return a.sizeError(op, n, ErrTooLarge)
}

// Free gives a block back. A block already free (or held by a Cache) is
// ErrDoubleFree; a slice that does not start at a block this allocator handed
// out, or that reaches past its block, is ErrForeign. Either way nothing
// changes. Free of a large block (above MaxSmall) gives its pages back to
// the OS at once; if the OS refuses, Free returns the OS's error and the
// block stays allocated (Free may be called again).
func (a *Allocator) Free(b []byte) error {
	if perP {
		pid := proc.Pin()
		if uint(pid) < maxProcs && !a.paused.Load() {
			if c := a.pcs[pid].Load(); c != nil && c.freeFast(b) {
				proc.Unpin()
				return nil
			}
		}
		proc.Unpin()
	}
	return a.freeSlow(b)
}

// freeSlow is Free when this P's cache's fast path cannot take the block
// (see Cache.freeSlow), or without per-P caches.
func (a *Allocator) freeSlow(b []byte) error {
	off, inPages := a.offsetOf(b)
	if !inPages {
		return a.freeLarge(b)
	}
	pid := -1
	if perP {
		pid = proc.Pin()
		if uint(pid) < maxProcs && !a.paused.Load() {
			if c := a.pcs[pid].Load(); c != nil {
				c.limit = a.carvedEnd()
				k := a.freeing(off, cap(b))
				if k == 0 { // find out why under the lock, which a racing Close cannot pass
					proc.Unpin()
					return a.freeErr("free", off, cap(b))
				}
				var out [cacheBatch]uintptr
				full := c.held[k] == cacheMax
				if full {
					c.takeOldest(k, out[:])
				}
				c.push(k, off)
				proc.Unpin()
				if full {
					a.giveBack(k, out[:])
				}
				return nil
			}
		}
		proc.Unpin()
	}
	return a.freeLocked(off, cap(b), pid)
}

// freeing is Free's step without the lock: if off starts a block allocated
// to a user, with a slice of capacity n inside it, it moves the block to
// state stCached (poisoned in the checked build) and returns its class;
// the caller puts it in a cache. Otherwise it returns 0 and changes nothing
// (freeErr says why). A page's class may change under it: claim then fails,
// since every state byte holds its page's class.
func (a *Allocator) freeing(off uintptr, n int) int {
	m := a.meta(int(off >> arenaShift))
	c := int(m.pages[(off>>pageShift)&(pagesPerArena-1)].class.Load() & (classSlots - 1))
	in := off & pageMask
	// Class 0 (a page not in use) fails the first test: endOff[0] is 0.
	if in >= endOff[c] || blockIndex(in, c)*uintptr(classSize[c]) != in || n > classSize[c] ||
		!claim(stateIn(m, off, c), c) {
		return 0
	}
	if check.On {
		check.Fill(a.block(off, classSize[c]))
	}
	return c
}

// freeLocked is Free under the lock: the way of the checked build and of the
// race detector's, and the fallback for a P without a cache (pid, -1 if
// none), which it readies. The block goes straight back to its page.
func (a *Allocator) freeLocked(off uintptr, n, pid int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.claimLocked(off, n)
	if err != nil {
		return a.blockError("free", a.addr(off), err)
	}
	a.freeBlock(off, c)
	a.readyCache(pid)
	return nil
}

// claimLocked is freeing under the lock, with the reason it fails. Callers
// hold a.mu.
func (a *Allocator) claimLocked(off uintptr, n int) (int, error) {
	if a.closed.Load() {
		return 0, ErrClosed
	}
	c, err := a.locate(off, n)
	if err != nil {
		return 0, err
	}
	if !claim(a.stateAt(off, c), c) {
		return 0, ErrDoubleFree
	}
	check.Fill(a.block(off, classSize[c]))
	return c, nil
}

// validate checks that off is the start of a block allocated to the user,
// with a slice of capacity n that stays inside it, and returns its class.
// Callers hold a.mu.
func (a *Allocator) validate(off uintptr, n int) (int, error) {
	if a.closed.Load() {
		return 0, ErrClosed
	}
	c, err := a.locate(off, n)
	if err == nil && *a.stateAt(off, c) != stateByte(c, stUser) {
		err = ErrDoubleFree
	}
	return c, err
}

// freeErr says, under the lock (which a racing Close cannot pass), why the
// lock-free step of a Free (op) rejected the slice at off with capacity n.
func (a *Allocator) freeErr(op string, off uintptr, n int) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.validate(off, n)
	if err == nil {
		// The block was not the user's when the claim failed, and has been
		// handed out again since: the Free came too late, as a double free.
		err = ErrDoubleFree
	}
	return a.blockError(op, a.addr(off), err)
}

// locate finds the class of the block starting at off, a page offset, or
// says why there is none. Callers hold a.mu.
func (a *Allocator) locate(off uintptr, n int) (int, error) {
	// A released arena's metadata reads as zero (class 0) in the normal
	// build; in the checked build it is inaccessible, so look first.
	if check.On && a.arenas[off>>arenaShift].state.Load() != arenaActive {
		return 0, ErrDoubleFree
	}
	c := int(a.page(off).class.Load())
	if c == 0 {
		return 0, ErrDoubleFree // no block of this page is in use
	}
	in := off & pageMask
	idx := blockIndex(in, c)
	if idx*uintptr(classSize[c]) != in || int(idx) >= nBlocks[c] || n > classSize[c] {
		return 0, ErrForeign
	}
	return c, nil
}

// Realloc returns a block of n bytes holding the first min(len(b), n) bytes
// of b, the rest zero. It reuses b's block when n fits in it; otherwise it
// allocates, copies and frees b. A b that Free would reject is rejected the
// same way, and nothing changes; so does a failed allocation. Realloc of an
// empty nil slice is Alloc.
func (a *Allocator) Realloc(b []byte, n int) ([]byte, error) {
	if b == nil {
		return a.Alloc(n)
	}
	if n < 0 || n > MaxAlloc {
		return nil, a.badSize("realloc", n)
	}
	whole, err := a.whole(b)
	if err != nil {
		return nil, err
	}
	if n <= len(whole) && (n > MaxSmall) == (len(whole) > MaxSmall) {
		nb := whole[:n:n]
		if n > len(b) {
			clear(nb[len(b):])
		}
		return nb, nil
	}
	nb, err := a.Alloc(n)
	if err != nil {
		return nil, err
	}
	copy(nb, b)
	if err := a.Free(b); err != nil {
		_ = a.Free(nb)
		return nil, err
	}
	return nb, nil
}

// whole validates b as Free would and returns its whole block.
func (a *Allocator) whole(b []byte) ([]byte, error) {
	off, inPages := a.offsetOf(b)
	if !inPages {
		return a.largeWhole(b)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c, err := a.validate(off, cap(b))
	if err != nil {
		return nil, a.blockError("realloc", a.addr(off), err)
	}
	return a.block(off, classSize[c]), nil
}

// Close gives everything back if no block is allocated. With blocks still
// allocated (by the user or held by an open Cache) it returns an error
// wrapping ErrLeaked that says how many blocks and bytes, and the allocator
// stays usable. After a successful Close every method returns ErrClosed.
//
// The memory goes back to the operating system at once. The large blocks'
// reservation is unmapped at once too; the arenas' is unmapped when the
// Allocator becomes unreachable, because a Free that races with Close (a
// stale or double free: the caller's bug) may still be reading the metadata
// without the lock, which then reads as zero and the call fails. The checked
// build, which reads it only under the lock, unmaps at once.
func (a *Allocator) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lmu.Lock()
	defer a.lmu.Unlock()
	if a.closed.Load() {
		return a.errorf("close", ErrClosed)
	}
	a.sweepCaches()
	if err := a.leaks(); err != nil {
		a.paused.Store(false)
		return err
	}
	a.closed.Store(true) // before the memory goes: lock-free checks then fail
	return a.dropMemory()
}

// dropMemory gives the arenas, the large blocks' space and their metadata
// back after Close (see Close). Callers hold a.mu and a.lmu.
func (a *Allocator) dropMemory() error {
	// Every use of the large space checks closed under a.lmu first, so it
	// goes at once.
	if ls := a.large; ls != nil {
		if err := ls.close(); err != nil {
			return a.errorf("close", err)
		}
	}
	if err := vmem.Retire(a, a.region, a.metaRegion); err != nil {
		return a.errorf("close", err)
	}
	return nil
}

// leaks reports the blocks still allocated, if any. Callers hold a.mu and
// a.lmu.
func (a *Allocator) leaks() error {
	blocks, bytes, cached := 0, 0, 0
	if ls := a.large; ls != nil {
		blocks, bytes = ls.spans.usedSpans, ls.spans.usedPages<<ls.shift
	}
	for c := 1; c < nClasses; c++ {
		blocks += a.counts[c].blocks
		bytes += a.counts[c].blocks * classSize[c]
		cached += a.counts[c].cached
	}
	if blocks == 0 {
		return nil
	}
	return a.errorf(fmt.Sprintf("close with %s (%d bytes) allocated, %d held by caches", count(blocks, "block"), bytes, cached), ErrLeaked)
}
