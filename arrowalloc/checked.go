// The checked allocator: every buffer on pages of its own, made inaccessible
// at release, so a use after release faults and is reported with the
// buffer's allocation and release sites.

package arrowalloc

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/offheap/offheap/arena"
	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/errs"
	"github.com/offheap/offheap/vmem"
)

// DefaultCheckedReserve is the address space a Checked allocator reserves
// when CheckedOptions.Reserve is 0; MaxCheckedReserve is the most it may.
const (
	DefaultCheckedReserve = 4 << 30
	MaxCheckedReserve     = 64 << 30
)

// CheckedOptions tune a Checked allocator. The zero value (or a nil
// *CheckedOptions) is ready to use.
type CheckedOptions struct {
	// Name labels the mapping in /proc/PID/maps.
	Name string
	// Reserve is the address space the allocator cycles through: the most
	// bytes (plus a page per buffer) live at once, and the larger it is the
	// later a released buffer's pages are reused. 0 means
	// DefaultCheckedReserve. It costs no memory.
	Reserve int
}

// Checked is an Arrow memory.Allocator for tests that finds the bugs Go's
// allocator hides: a read of a buffer after its release (which on Go's heap
// still sees the old bytes, kept alive by the garbage collector), a write past
// its end, a double free, a leak. Each is reported with the call stacks of
// the misuse and of the buffer's allocation and release.
//
// Swap it in where a test uses Arrow's memory.CheckedAllocator: AssertSize
// and CurrentAlloc work alike (and report bad frees too), and Run reports
// what only a fault can find.
//
// # Layout
//
// The allocator reserves one range of address space (CheckedOptions.Reserve)
// and gives every buffer a run of whole pages of its own, followed by a guard
// page. The buffer ends where its run ends (rounded up to Alignment, as Arrow
// pads), so a read or write past its padding lands on the guard page and
// faults. Free and Reallocate (which always moves a buffer) make the run
// inaccessible (PROT_NONE) and give its memory back to the OS, so any later
// access through a stale slice, string or unsafe pointer faults. Runs are
// taken from the reservation in address order, wrapping round at its end
// (see space): a released run is handed out again only after the whole
// reservation has been cycled through, so a stale access faults rather than
// reading a new owner's bytes. An empty buffer (Allocate(0)) is an empty
// slice at page 0, which is never handed out: reading past its end faults too.
//
// # Reports
//
// A fault does not tell the program anything by itself; Go kills the process.
// Run calls a function with faults turned into panics for the calling
// goroutine (runtime/debug.SetPanicOnFault) and turns a fault at one of the
// allocator's addresses into a *BufferError: the buffer the address falls in,
// its allocation and release stacks (kept for every buffer until its pages are
// reused), and the stack of the faulting code. Diagnose does the same for a
// panic value the caller recovered itself. A bad Free or Reallocate (a double
// free, a slice it did not hand out) changes nothing and is kept for Err.
// Close and AssertSize report live buffers grouped by allocation site.
//
// # Cost
//
// Checked mode is for tests: every call takes a lock, records its call stack
// (runtime.Callers into a fixed array, interned), and changes page
// protections (one or two system calls); every buffer costs at least a page of
// memory and two of address space. Each live buffer splits the mapping in
// two, so about 30,000 live buffers is the most the default
// vm.max_map_count (65530) allows; past it Allocate panics with the OS error.
// The normal allocator (New) carries none of this cost: it is another type.
//
// # Invariants
//
//   - a record is kept for every run whose start bit is set in space, live
//     or released, and for no other; live counts the live ones and bytes
//     their sizes;
//   - a live record's data pages are read-write and its guard page is
//     inaccessible; a released record's pages are inaccessible;
//   - a buffer of size n starts roundUp(n) bytes before the end of its
//     record's data pages.
//
// The offheapcheck build checks each record as an operation changes it, and
// the counts at AssertSize and Close.
//
// All methods are safe for concurrent use.
type Checked struct {
	mu     sync.Mutex
	region *vmem.Region
	mem    []byte  // the whole reservation; a buffer is a slice of it
	base   uintptr // addr(mem)
	page   int     // page size

	space  space
	recs   map[int]record // by the first page of their run
	stacks stacks
	live   int // live buffers
	bytes  int // their sizes
	bad    int // bad frees seen
	err    error
	closed bool
}

// record describes one buffer of a Checked allocator, live or released.
type record struct {
	size        int   // bytes asked for
	pages       int   // data pages; the guard page follows
	alloc       int32 // stack of the allocation
	release     int32 // stack of the release, once released
	released    bool
	reallocated bool // released by Reallocate
}

var _ memory.Allocator = (*Checked)(nil)

// NewChecked returns a checked allocator with its address space reserved;
// opts may be nil. The reservation is unmapped when the allocator becomes
// unreachable (after Close, its memory has already gone back to the OS).
func NewChecked(opts *CheckedOptions) (*Checked, error) {
	var o CheckedOptions
	if opts != nil {
		o = *opts
	}
	page := vmem.PageSize()
	if o.Reserve == 0 {
		o.Reserve = DefaultCheckedReserve
	}
	if o.Reserve < 3*page || o.Reserve > MaxCheckedReserve {
		return nil, fail("new checked allocator", fmt.Sprintf("reserving %d bytes", o.Reserve), arena.ErrInvalidSize)
	}
	r, err := reserveProtected(o.Reserve, o.Name)
	if err != nil {
		return nil, fail("new checked allocator", fmt.Sprintf("reserving %d bytes", o.Reserve), err)
	}
	mem := r.Bytes()
	c := &Checked{region: r, mem: mem, base: addr(mem), page: page, space: newSpace(len(mem) / page), recs: map[int]record{}}
	runtime.AddCleanup(c, func(r *vmem.Region) { _ = r.Close() }, r)
	return c, nil
}

// reserveProtected reserves n bytes, ready but inaccessible.
func reserveProtected(n int, name string) (*vmem.Region, error) {
	r, err := vmem.Reserve(n, &vmem.Options{Name: name})
	if err != nil {
		return nil, err
	}
	if err = r.Grow(n); err == nil {
		err = r.Protect(0, r.Len(), vmem.ProtNone)
	}
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// Allocate returns size zeroed bytes, 64-byte aligned, ending Alignment-padded
// at a guard page. A size of 0 returns an empty slice that holds no memory.
// It panics if the reservation is full or the OS refuses the mapping.
func (c *Checked) Allocate(size int) []byte {
	var buf [stackDepth]uintptr
	return c.allocate(size, callers(&buf, 0))
}

func (c *Checked) allocate(size int, at []uintptr) []byte {
	if size == 0 {
		return c.mem[:0:0]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.take(size, at)
	if err != nil {
		panic(err)
	}
	return b
}

// take places a buffer of size bytes. Callers hold c.mu.
func (c *Checked) take(size int, at []uintptr) ([]byte, error) {
	switch {
	case c.closed:
		return nil, c.sizeError("allocate", size, arena.ErrClosed)
	case size < 0:
		return nil, c.sizeError("allocate", size, arena.ErrInvalidSize)
	case size > len(c.mem)-2*c.page:
		return nil, c.sizeError("allocate", size, arena.ErrTooLarge)
	}
	n := (roundUp(size) + c.page - 1) / c.page
	p, ok := c.space.place(n + 1)
	if !ok {
		return nil, c.sizeError("allocate", size, arena.ErrExhausted)
	}
	c.forget(p, n+1)
	if err := c.region.Protect(p*c.page, n*c.page, vmem.ProtReadWrite); err != nil {
		c.space.free(p, n+1)
		return nil, c.sizeError("allocate", size, err)
	}
	c.recs[p] = record{size: size, pages: n, alloc: c.stacks.intern(at)}
	setRange(c.space.starts, p, p+1, true)
	c.live++
	c.bytes += size
	c.checkRecord(p)
	off := c.start(p, c.recs[p])
	return c.mem[off : off+size : off+size], nil
}

// forget drops the records of released runs that start in [p, p+n), whose
// pages are being handed out again. Callers hold c.mu.
func (c *Checked) forget(p, n int) {
	for s := nextSet(c.space.starts, p, p+n); s >= 0; s = nextSet(c.space.starts, s+1, p+n) {
		delete(c.recs, s)
		setRange(c.space.starts, s, s+1, false)
	}
}

// start returns the offset of the buffer of the record at page p.
func (c *Checked) start(p int, r record) int { return (p+r.pages)*c.page - roundUp(r.size) }

func (c *Checked) sizeError(op string, size int, err error) error {
	return fail(fmt.Sprintf("%s %d bytes", op, size), "", err)
}

// fail returns an error in offheap's one shape (internal/errs) about op,
// with a detail when not "": the package named once, so a vmem error
// underneath shows its cause without vmem's head.
func fail(op, detail string, err error) error {
	return errs.New(errs.Head("arrowalloc", "", op, "", ""), detail, err)
}

// Reallocate returns size bytes holding the first min(len(b), size) bytes of
// b, the rest zero, always at a new address; b's pages become inaccessible.
// A b that Free would reject is recorded as Free records it, and a new zeroed
// buffer (holding b's bytes if b is not this allocator's memory) is returned.
func (c *Checked) Reallocate(size int, b []byte) []byte {
	var buf [stackDepth]uintptr
	at := callers(&buf, 0)
	switch {
	case cap(b) == 0:
		return c.allocate(size, at)
	case size == 0:
		c.free(b, at)
		return c.mem[:0:0]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	nb, err := c.take(size, at)
	if err != nil {
		panic(err)
	}
	p, r, err := c.find("reallocate", b, at)
	if err != nil {
		c.record(err)
		if !c.contains(addr(b)) {
			copy(nb, b)
		}
		return nb
	}
	copy(nb, b)
	c.release(p, r, at, true)
	return nb
}

// Free releases b: its pages become inaccessible and go back to the OS.
// Empty slices (from Allocate(0)) are ignored. A double free, or a slice this
// allocator did not hand out, changes nothing and is kept for Err.
func (c *Checked) Free(b []byte) {
	var buf [stackDepth]uintptr
	c.free(b, callers(&buf, 0))
}

func (c *Checked) free(b []byte, at []uintptr) {
	if cap(b) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p, r, err := c.find("free", b, at)
	if err != nil {
		c.record(err)
		return
	}
	c.release(p, r, at, false)
}

// find returns the live buffer b is, and its first page; or the
// *BufferError that says why b is not one. Callers hold c.mu.
func (c *Checked) find(op string, b []byte, at []uintptr) (int, record, error) {
	a := addr(b)
	e := &BufferError{Op: op, Addr: a, Size: -1, Err: arena.ErrForeign, At: Stack(at)}
	if c.closed {
		e.Err = arena.ErrClosed
		return 0, record{}, e
	}
	if !c.contains(a) {
		return 0, record{}, e
	}
	p := int(a-c.base) / c.page
	r, ok := c.recs[p]
	if !ok || c.start(p, r) != int(a-c.base) || cap(b) > r.size {
		return 0, record{}, e
	}
	e.Size, e.Allocated = r.size, c.stacks.stack(r.alloc)
	if r.released {
		e.Err, e.Released, e.Reallocated = arena.ErrDoubleFree, c.stacks.stack(r.release), r.reallocated
		return 0, record{}, e
	}
	return p, r, nil
}

// describe returns the *BufferError for a fault at address a of the
// reservation. Callers hold c.mu.
func (c *Checked) describe(a uintptr, at Stack) error {
	e := &BufferError{Op: "access", Addr: a, Size: -1, Err: arena.ErrForeign, At: at}
	off := int(a - c.base)
	pg := off / c.page
	if pg == 0 {
		e.Size, e.Offset, e.Err = 0, off, ErrOverrun
		return e
	}
	p := prevSet(c.space.starts, pg)
	r, ok := c.recs[p]
	if !ok || pg > p+r.pages {
		return e // a page no buffer has had since it was last reused
	}
	e.Size, e.Offset, e.Allocated = r.size, off-c.start(p, r), c.stacks.stack(r.alloc)
	switch {
	case r.released:
		e.Err, e.Released, e.Reallocated = ErrUseAfterRelease, c.stacks.stack(r.release), r.reallocated
	case e.Offset >= r.size:
		e.Err = ErrOverrun
	default:
		// A live buffer's own bytes fault only if they belonged to a buffer
		// that was released when the fault struck and handed out since.
		e.Size, e.Offset, e.Allocated, e.Err = -1, 0, nil, ErrUseAfterRelease
	}
	return e
}

// contains reports whether a is an address of the reservation.
func (c *Checked) contains(a uintptr) bool { return a >= c.base && a-c.base < uintptr(len(c.mem)) }

// release makes the live buffer of record r at page p inaccessible and gives
// its pages back. Callers hold c.mu.
func (c *Checked) release(p int, r record, at []uintptr, realloc bool) {
	off, n := p*c.page, r.pages*c.page
	if err := c.region.Protect(off, n, vmem.ProtNone); err != nil {
		panic(c.sizeError("release", r.size, err))
	}
	if err := c.region.Release(off, n); err != nil {
		panic(c.sizeError("release", r.size, err))
	}
	r.released, r.release, r.reallocated = true, c.stacks.intern(at), realloc
	c.recs[p] = r
	c.space.free(p, r.pages+1)
	c.live--
	c.bytes -= r.size
	c.checkRecord(p)
}

// record keeps the first bad free or reallocate. Callers hold c.mu.
func (c *Checked) record(err error) {
	c.bad++
	if c.err == nil {
		c.err = err
	}
}

// Err returns the first bad Free or Reallocate seen (a *BufferError wrapping
// arena.ErrDoubleFree or arena.ErrForeign, with the stacks), with how many
// there were, or nil.
func (c *Checked) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return nil
	}
	return fmt.Errorf("%d bad frees, the first: %w", c.bad, c.err)
}

// CurrentAlloc returns the bytes of the live buffers, as the sizes asked for.
func (c *Checked) CurrentAlloc() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes
}

// AssertSize reports through t.Errorf if the live buffers do not hold sz
// bytes, listing them by allocation site, and if any Free or Reallocate was
// bad, as Arrow's memory.CheckedAllocator.AssertSize does for its leaks.
func (c *Checked) AssertSize(t memory.TestingT, sz int) {
	t.Helper()
	if err := c.Err(); err != nil {
		t.Errorf("%v", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkBooks()
	if c.bytes != sz {
		t.Errorf("arrowalloc: %d bytes in %d buffers allocated, want %d bytes:\n%s", c.bytes, c.live, sz, c.leakReport(20))
	}
}

// Close gives the memory back to the OS if no buffer is live; the address
// space stays reserved (and inaccessible) until the allocator is unreachable,
// so a stale access still faults and Run still reports it. With buffers live it
// returns an error wrapping arena.ErrLeaked that lists them by allocation
// site, and the allocator stays usable. After a successful Close, Allocate
// panics and Free is recorded as bad, with arena.ErrClosed.
func (c *Checked) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkBooks()
	switch {
	case c.closed:
		return fail("close", "", arena.ErrClosed)
	case c.live > 0:
		return fmt.Errorf("arrowalloc: close with %d buffers (%d bytes) live: %w\n%s", c.live, c.bytes, arena.ErrLeaked, c.leakReport(20))
	}
	// Not vmem.Retire: in the checked build it unmaps at once, and a later
	// mapping at these addresses would turn a stale access into a silent read.
	if err := c.region.Release(0, len(c.mem)); err != nil {
		return fail("close", "", err)
	}
	c.closed = true
	return nil
}

// checkRecord verifies, in the offheapcheck build, the invariants of the
// record at page p that an operation just changed. Callers hold c.mu.
func (c *Checked) checkRecord(p int) {
	if !check.On {
		return
	}
	r, ok := c.recs[p]
	check.Invariant(ok && nextSet(c.space.starts, p, p+1) == p, "record at page %d: kept %v, start bit %v", p, ok, nextSet(c.space.starts, p, p+1) == p)
	for q := p; q <= p+r.pages; q++ {
		check.Invariant(c.space.taken(q) != r.released, "page %d of the run at %d: taken %v, released %v", q, p, c.space.taken(q), r.released)
	}
}

// checkBooks verifies, in the offheapcheck build, that live and bytes count
// the live records and that every record has its start bit. Callers hold
// c.mu.
func (c *Checked) checkBooks() {
	if !check.On {
		return
	}
	live, bytes := 0, 0
	for p, r := range c.recs {
		check.Invariant(nextSet(c.space.starts, p, p+1) == p, "record at page %d has no start bit", p)
		if !r.released {
			live++
			bytes += r.size
		}
	}
	check.Invariant(live == c.live && bytes == c.bytes, "%d live buffers of %d bytes counted as %d of %d", live, bytes, c.live, c.bytes)
}
