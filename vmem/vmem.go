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
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
)

// Errors returned by vmem, wrapped with context; test for them with errors.Is.
// Failures of the operating system wrap the syscall.Errno it returned.
var (
	ErrInvalidSize = errors.New("vmem: invalid size")          // zero or negative sizes, ranges outside the ready prefix
	ErrUnaligned   = errors.New("vmem: not page aligned")      // an offset or length that must be a page multiple is not
	ErrExhausted   = errors.New("vmem: reservation exhausted") // growth past the reserved size
	ErrClosed      = errors.New("vmem: region closed")         // use after Close
	ErrReadOnly    = errors.New("vmem: region is read-only")   // a write-only operation on a read-only file region
	ErrShortFile   = errors.New("vmem: file too short")        // a read-only region asked to map past the end of its file
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
	// what a writer appends when Grow is called with the file's new length.
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
//
// All methods are safe for concurrent use. Growth does not block readers of
// the ready prefix; it only serializes with other state changes.
type Region struct {
	mu       sync.Mutex
	base     unsafe.Pointer // start of the reservation (never Go heap memory)
	size     int            // bytes reserved
	ready    atomic.Int64   // bytes of the prefix that are mapped for use
	file     *os.File       // backing file, or nil for anonymous memory
	readOnly bool
	closed   bool
	name     string
}

var pageSize = os.Getpagesize()

// PageSize returns the operating system's page size in bytes.
func PageSize() int { return pageSize }

// RoundUp rounds n up to a multiple of the page size.
func RoundUp(n int) int { return (n + pageSize - 1) &^ (pageSize - 1) }

// Reserve reserves size bytes of address space (rounded up to a page) that
// cost no memory until Grow makes them ready.
func Reserve(size int, opts *Options) (*Region, error) {
	o := optionsOf(opts)
	if size <= 0 {
		return nil, fmt.Errorf("vmem: reserve %d bytes for %q: %w", size, o.Name, ErrInvalidSize)
	}
	if o.ReadOnly {
		return nil, fmt.Errorf("vmem: reserve %q: ReadOnly applies to files only: %w", o.Name, ErrReadOnly)
	}
	size = RoundUp(size)
	base, err := reserve(size)
	if err != nil {
		return nil, fmt.Errorf("vmem: reserve %d bytes for %q: %w", size, o.Name, err)
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

// Name returns the name the region was created with.
func (r *Region) Name() string { return r.name }

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
	if err := r.usable("grow"); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("vmem: grow %q to %d: %w", r.name, n, ErrInvalidSize)
	}
	if n > r.size {
		return fmt.Errorf("vmem: grow %q to %d of %d reserved: %w", r.name, n, r.size, ErrExhausted)
	}
	n = RoundUp(n)
	old := r.Len()
	if n <= old {
		return nil
	}
	if err := r.makeReady(old, n); err != nil {
		return fmt.Errorf("vmem: grow %q from %d to %d: %w", r.name, old, n, err)
	}
	r.ready.Store(int64(n))
	return nil
}

// makeReady maps [old, n) for use; both are page multiples.
func (r *Region) makeReady(old, n int) error {
	at := unsafe.Add(r.base, old)
	if r.file == nil {
		return protect(at, n-old, ProtReadWrite)
	}
	if r.readOnly {
		st, err := r.file.Stat()
		if err != nil {
			return err
		}
		if RoundUp(int(st.Size())) < n {
			return fmt.Errorf("%d bytes in file: %w", st.Size(), ErrShortFile)
		}
		return mapFile(r.file, old, at, n-old, ProtRead)
	}
	if err := extendFile(r.file, n); err != nil {
		return err
	}
	return mapFile(r.file, old, at, n-old, ProtReadWrite)
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
		return fmt.Errorf("vmem: release %q [%d, %d): %w", r.name, off, off+n, err)
	}
	if check.On {
		if err := protect(at, n, ProtNone); err != nil {
			return fmt.Errorf("vmem: release %q [%d, %d): protect: %w", r.name, off, off+n, err)
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
		return fmt.Errorf("vmem: reuse %q [%d, %d): %w", r.name, off, off+n, err)
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
		return fmt.Errorf("vmem: protect %q: access mode %d: %w", r.name, p, ErrInvalidSize)
	}
	if r.readOnly && p == ProtReadWrite {
		return fmt.Errorf("vmem: protect %q read-write: %w", r.name, ErrReadOnly)
	}
	if n == 0 {
		return nil
	}
	if err := protect(unsafe.Add(r.base, off), n, p); err != nil {
		return fmt.Errorf("vmem: protect %q [%d, %d): %w", r.name, off, off+n, err)
	}
	return nil
}

// Resident returns how many bytes of the ready prefix are resident in memory.
func (r *Region) Resident() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable("count resident pages"); err != nil {
		return 0, err
	}
	n, err := resident(r.base, r.Len())
	if err != nil {
		return 0, fmt.Errorf("vmem: count resident pages of %q: %w", r.name, err)
	}
	return n, nil
}

// Close unmaps the whole reservation. Every view of the region becomes invalid;
// every later call returns ErrClosed. A file region does not close its file.
func (r *Region) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable("close"); err != nil {
		return err
	}
	if err := unmap(r.base, r.size); err != nil {
		return fmt.Errorf("vmem: close %q: %w", r.name, err)
	}
	r.closed = true
	r.ready.Store(0)
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
func (r *Region) usable(op string) error {
	if r.closed {
		return fmt.Errorf("vmem: %s %q: %w", op, r.name, ErrClosed)
	}
	return nil
}

// inReady validates a page-aligned range inside the ready prefix. Callers hold r.mu.
func (r *Region) inReady(op string, off, n int) error {
	if err := r.usable(op); err != nil {
		return err
	}
	if off < 0 || n < 0 || off > r.Len()-n {
		return fmt.Errorf("vmem: %s %q [%d, +%d) of %d ready: %w", op, r.name, off, n, r.Len(), ErrInvalidSize)
	}
	if off%pageSize != 0 || n%pageSize != 0 {
		return fmt.Errorf("vmem: %s %q [%d, +%d): %w", op, r.name, off, n, ErrUnaligned)
	}
	return nil
}
