// Package vmem manages address space for the rest of offheap: it reserves a
// range that costs no memory, makes a prefix of it usable and extends that
// prefix in place, hands pages back to the operating system while keeping the
// reservation, and maps files into a reservation so they too grow in place.
//
// Every Region's base address is fixed from Reserve (or MapFile) to Close, so a
// []byte view of its ready prefix stays valid across any growth. That is the
// property the layers above (mapped, column, pool, arena) are built on.
package vmem

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/errs"
)

// Errors returned by vmem, wrapped with context; test for them with errors.Is.
// Failures of the operating system wrap the syscall.Errno it returned.
var (
	ErrInvalidSize = errors.New("invalid size")                  // zero or negative sizes, ranges outside the ready prefix
	ErrUnaligned   = errors.New("not page aligned")              // an offset or length that must be a page multiple is not
	ErrExhausted   = errors.New("reservation exhausted")         // growth past the reserved size
	ErrClosed      = errors.New("region closed")                 // use after Close
	ErrReadOnly    = errors.New("region is read-only")           // a write-only operation on a read-only file region
	ErrShortFile   = errors.New("file too short")                // a read-only region asked to map past the end of its file
	ErrInUse       = errors.New("file in use by another writer") // a second writable region of one file (or a second region of one *os.File)
	ErrNotRegular  = errors.New("not a regular file")            // MapFile of a directory, FIFO, device or socket
)

// Prot is the access allowed to a range of a Region.
type Prot int

// Access modes for Protect.
const (
	ProtNone      Prot = iota // no access: any touch faults
	ProtRead                  // read only
	ProtReadWrite             // read and write
)

// Options tune a Region. The zero value (or a nil *Options) is ready to use.
type Options struct {
	// Name labels errors and, for anonymous regions on Linux 5.17 and later,
	// names the mapping in /proc/PID/maps as [anon:Name].
	Name string
	// HugePages advises the kernel to back the region with transparent huge pages.
	HugePages bool
	// ReadOnly maps a file for reading only (MapFile only). Such a region sees
	// what a writer appends once Refresh is called.
	ReadOnly bool
}

// Region is a reserved range of address space whose prefix is ready for use.
//
// # States
//
// Following the Go runtime's vocabulary, each page of a Region is
//   - reserved: mapped PROT_NONE with MAP_NORESERVE; costs no memory, faults if touched;
//   - ready: readable and (unless ReadOnly) writable; anonymous pages read as
//     zero until written and cost memory once touched;
//   - released: handed back to the OS with MADV_DONTNEED by Release. The
//     reservation is kept and RSS drops at once. Reuse makes the pages ready
//     again; they then read as zero (anonymous) or as the file's bytes. In the
//     checked build released pages are PROT_NONE until Reuse, so a stale view
//     faults.
//
// # Invariants
//
//   - base is fixed from creation to Close; views of [0, Len()) never move.
//   - 0 <= ready <= size, both multiples of PageSize().
//   - pages in [ready, size) are reserved; pages in [0, ready) are ready or released.
//   - for a writable file region, the file is at least ready bytes long, so no
//     ready page lies past end of file (which would raise SIGBUS).
//   - for a read-only file region, ready == RoundUp(shared) and the region
//     holds the reader lock on shared bytes, so no writer cuts the file
//     below them (see MapFile).
//
// All methods are safe for concurrent use. Growth does not block readers of
// the ready prefix; it only serializes with other state changes.
type Region struct {
	mu       sync.Mutex
	base     unsafe.Pointer // start of the reservation (never Go heap memory)
	size     int            // bytes reserved
	ready    atomic.Int64   // bytes of the prefix that are mapped for use
	file     *os.File       // backing file, or nil for anonymous memory
	fileLen  int            // the file's length at MapFile or the last Refresh
	shared   int            // read-only: bytes of the file the reader lock covers
	readOnly bool
	closed   bool
	name     string // Options.Name
	path     string // the file's path, "" for anonymous memory
}

var pageSize = os.Getpagesize()

// maxRound is the largest page multiple an int holds.
var maxRound = math.MaxInt &^ (pageSize - 1)

// PageSize returns the operating system's page size in bytes.
func PageSize() int { return pageSize }

// RoundUp rounds n up to a multiple of the page size. An n past the largest
// page multiple an int holds gives that multiple rather than overflowing.
func RoundUp(n int) int {
	if n > maxRound {
		return maxRound
	}
	return (n + pageSize - 1) &^ (pageSize - 1)
}

// head is the start of an error about op with argument arg on the region
// named name backed by the file at path (each may be "").
func head(name, op, path, arg string) string { return errs.Head("vmem", name, op, path, arg) }

// fail wraps err, with a detail when not "", in an error about op on r.
func (r *Region) fail(op, arg, detail string, err error) error {
	return errs.New(head(r.name, op, r.path, arg), detail, err)
}

// Reserve reserves size bytes of address space (rounded up to a page) that
// cost no memory until Grow makes them ready.
func Reserve(size int, opts *Options) (*Region, error) {
	o := optionsOf(opts)
	r, err := reserveRegion(size, o)
	if err != nil {
		return nil, errs.New(head(o.Name, "reserve", "", fmt.Sprintf("%d bytes", size)), "", err)
	}
	return r, nil
}

// reserveRegion is Reserve, its error not yet wrapped.
func reserveRegion(size int, o Options) (*Region, error) {
	switch {
	case size <= 0:
		return nil, ErrInvalidSize
	case o.ReadOnly:
		return nil, fmt.Errorf("ReadOnly applies to files only: %w", ErrReadOnly)
	}
	size = RoundUp(size)
	base, err := reserve(size)
	if err != nil {
		return nil, err
	}
	r := &Region{base: base, size: size, name: o.Name}
	r.adviseAll(o)
	return r, nil
}

func optionsOf(opts *Options) Options {
	if opts == nil {
		return Options{}
	}
	return *opts
}

// adviseAll applies the best-effort options: a region that cannot be named or
// backed by huge pages works the same, so their errors are dropped.
func (r *Region) adviseAll(o Options) {
	if o.Name != "" && r.file == nil {
		_ = nameRange(r.base, r.size, o.Name)
	}
	if o.HugePages {
		_ = adviseHuge(r.base, r.size)
	}
}

// Len returns the number of ready bytes: the length of Bytes().
func (r *Region) Len() int { return int(r.ready.Load()) }

// Cap returns the number of bytes reserved: the most Grow can make ready.
func (r *Region) Cap() int { return r.size }

// Name returns the name the region was created with; for a file region
// created without one, the file's path.
func (r *Region) Name() string {
	if r.name == "" {
		return r.path
	}
	return r.name
}

// Bytes returns a view of the ready prefix. It stays valid, at the same
// address, until Close; growth does not move it.
func (r *Region) Bytes() []byte { return view(r.base, r.Len()) }

// Grow makes the first n bytes (rounded up to a page) ready. Growing to no
// more than Len() does nothing. A file region first extends its file
// (writable) or checks the file is long enough (read-only). On any error the
// region is unchanged and still usable.
func (r *Region) Grow(n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.growTo(n); err != nil {
		return r.fail("grow", fmt.Sprintf("to %d bytes", n), "", err)
	}
	return nil
}

// growTo checks n and makes the first n bytes ready; callers hold r.mu.
func (r *Region) growTo(n int) error {
	switch {
	case r.closed:
		return ErrClosed
	case n < 0:
		return ErrInvalidSize
	case n > r.size:
		return fmt.Errorf("%d reserved: %w", r.size, ErrExhausted)
	}
	return r.grow(n)
}

// grow makes the first n bytes, n <= size, ready; callers hold r.mu. On
// error nothing changes, the file's length included.
func (r *Region) grow(n int) error {
	n = RoundUp(n)
	old := r.Len()
	if n <= old {
		return nil
	}
	var err error
	switch {
	case r.file == nil:
		err = protect(unsafe.Add(r.base, old), n-old, ProtReadWrite)
	case r.readOnly:
		return r.follow(n, n-pageSize+1) // sets ready
	default:
		err = r.extend(old, n)
	}
	if err != nil {
		return err
	}
	r.ready.Store(int64(n))
	return nil
}

// Release hands the pages of [off, off+n) back to the operating system, keeping
// the reservation: RSS drops at once. off and n must be page multiples inside
// the ready prefix. The pages must be made ready again with Reuse before they
// are touched; until then, in the checked build, touching them faults.
func (r *Region) Release(off, n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.inReady("release", off, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	at := unsafe.Add(r.base, off)
	if err := dontNeed(at, n); err != nil {
		return r.fail("release", span(off, n), "", err)
	}
	if check.On {
		if err := protect(at, n, ProtNone); err != nil {
			return r.fail("release", span(off, n), "protect", err)
		}
	}
	return nil
}

// Reuse makes released pages in [off, off+n) ready again. Anonymous pages read
// as zero; file pages read back from the file. Reusing pages that were never
// released is harmless.
func (r *Region) Reuse(off, n int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.inReady("reuse", off, n); err != nil {
		return err
	}
	if !check.On || n == 0 {
		return nil
	}
	if err := protect(unsafe.Add(r.base, off), n, r.prot()); err != nil {
		return r.fail("reuse", span(off, n), "", err)
	}
	return nil
}

// Protect sets the access allowed to [off, off+n), page multiples inside the
// ready prefix. A read-only region cannot be made writable.
func (r *Region) Protect(off, n int, p Prot) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.inReady("protect", off, n); err != nil {
		return err
	}
	if p < ProtNone || p > ProtReadWrite {
		return r.fail("protect", span(off, n), fmt.Sprintf("access mode %d", p), ErrInvalidSize)
	}
	if r.readOnly && p == ProtReadWrite {
		return r.fail("protect", span(off, n), "read-write", ErrReadOnly)
	}
	if n == 0 {
		return nil
	}
	if err := protect(unsafe.Add(r.base, off), n, p); err != nil {
		return r.fail("protect", span(off, n), "", err)
	}
	return nil
}

// Resident returns how many bytes of the ready prefix are resident in memory.
func (r *Region) Resident() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable("count resident pages", ""); err != nil {
		return 0, err
	}
	n, err := resident(r.base, r.Len())
	if err != nil {
		return 0, r.fail("count resident pages", "", "", err)
	}
	return n, nil
}

// Close unmaps the whole reservation. Every view of the region becomes invalid;
// every later call returns ErrClosed. A file region gives up its lock on the
// file (see MapFile) but does not close the file.
func (r *Region) Close() error { return r.close(-1) }

// close unmaps the reservation and, for a writable file region, cuts the
// file to cut bytes if cut >= 0 and no reader maps past it; it then drops
// the region's file locks.
func (r *Region) close(cut int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable("close", ""); err != nil {
		return err
	}
	if err := unmap(r.base, r.size); err != nil {
		return r.fail("close", "", "", err)
	}
	r.closed = true
	r.ready.Store(0)
	if r.file == nil {
		return nil
	}
	var err error
	if cut >= 0 && !r.readOnly {
		err = r.cut(int64(cut))
	}
	unlockAll(r.file)
	mappedFiles.Delete(r.file)
	if err != nil {
		return r.fail("close", "", fmt.Sprintf("cut to %d bytes", cut), err)
	}
	return nil
}

// Retire gives the memory of regions back to the operating system now
// (Release of every ready page: RSS drops at once) and closes them, unmapping
// their reservations, only once owner is unreachable. An owner whose readers
// may still be inside a region when it is closed (a lock-free read racing
// Close) retires its regions instead of closing them: a racing reader then
// reads zeros and finds the owner closed, instead of faulting on unmapped
// memory. In the checked build, where such readers must not exist, Retire
// closes the regions at once, so a stale access faults. regions must not
// refer to owner.
func Retire[T any](owner *T, regions ...*Region) error {
	var err error
	if check.On {
		for _, r := range regions {
			err = errors.Join(err, r.Close())
		}
		return err
	}
	for _, r := range regions {
		err = errors.Join(err, r.Release(0, r.Len()))
	}
	runtime.AddCleanup(owner, closeAll, slices.Clone(regions))
	return err
}

// closeAll closes regions, for Retire's cleanup, which has no one to report to.
func closeAll(regions []*Region) {
	for _, r := range regions {
		_ = r.Close()
	}
}

func (r *Region) prot() Prot {
	if r.readOnly {
		return ProtRead
	}
	return ProtReadWrite
}

// usable reports ErrClosed for a closed region. Callers hold r.mu.
func (r *Region) usable(op, arg string) error {
	if r.closed {
		return r.fail(op, arg, "", ErrClosed)
	}
	return nil
}

// span is the argument of an operation on the n bytes at off.
func span(off, n int) string { return fmt.Sprintf("[%d, +%d)", off, n) }

// inReady validates a page-aligned range inside the ready prefix for op.
// Callers hold r.mu.
func (r *Region) inReady(op string, off, n int) error {
	if err := r.checkRange(off, n, true); err != nil {
		return r.fail(op, span(off, n), "", err)
	}
	return nil
}

// checkRange reports why [off, off+n) is not a range of the ready prefix (of
// whole pages, if aligned) of an open region. Callers hold r.mu.
func (r *Region) checkRange(off, n int, aligned bool) error {
	switch {
	case r.closed:
		return ErrClosed
	case off < 0 || n < 0 || off > r.Len()-n:
		return fmt.Errorf("%d ready: %w", r.Len(), ErrInvalidSize)
	case aligned && (off%pageSize != 0 || n%pageSize != 0):
		return ErrUnaligned
	}
	return nil
}
