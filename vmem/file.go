// File-backed regions: a file mapped into a reservation, extended in place as
// the file grows, flushed with msync, and guarded by file locks so that no
// writer, in this process or another, cuts the file from under a reader.

package vmem

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
	"unsafe"

	"github.com/offheap/offheap/internal/errs"
)

// MapFile reserves size bytes of address space and maps f, which must be a
// regular file, into its start. The caller keeps ownership of f and must
// keep it open until Close. An *os.File maps into one region at a time: a
// second MapFile of it is ErrInUse until the first region closes (open the
// file again for a second region).
//
// A writable region makes the whole file ready, first allocating any holes
// in it (a sparse file) and extending it to a page multiple; Grow extends the
// file further, allocating its blocks (fallocate, or writing the new range
// where the file system has no fallocate), so a full disk is an error from
// MapFile or Grow and never a fault at a later store. A read-only region maps
// the file as it is and Refresh maps what a writer appended since; it cannot
// allocate, so a sparse file that offheap did not write can still fault its
// reads on a full tmpfs, where reading a hole takes a page.
//
// # Locks
//
// File regions take advisory locks on their file (open file description
// locks, so they work between two opens in one process as between
// processes, and the kernel drops them when a process dies):
//   - a writable region holds the writer lock: a second writable region of the
//     same file is ErrInUse until the first is closed;
//   - a read-only region holds a shared lock covering the bytes it maps,
//     taken before it maps them and checked against the file's length after;
//   - a writer that shrinks the file (CloseTruncate, or undoing a failed
//     Grow) first takes an exclusive lock on every byte past the new length,
//     and shrinks only if it gets it: if a reader maps past the new length,
//     the file keeps its length.
//
// So no reader's page ever lies past the end of the file (which would raise
// SIGBUS), whatever the writer does through this package. A program that cuts
// the file by other means can still fault a reader. On macOS, which has no
// open file description locks, the writer lock is flock(2) and readers are
// not protected. On a file system without locks (ENOLCK, as NFS without its
// lock daemon) MapFile fails rather than map the file unguarded.
//
// A failed MapFile leaves the file as it was, its length included.
func MapFile(f *os.File, size int, opts *Options) (*Region, error) {
	o := optionsOf(opts)
	if f == nil {
		return nil, errs.New(head(o.Name, "map", "", "a nil *os.File"), "", fs.ErrInvalid)
	}
	r, err := mapFileRegion(f, size, o)
	if err != nil {
		return nil, errs.New(head(o.Name, "map", f.Name(), ""), "", err)
	}
	return r, nil
}

// mapFileRegion is MapFile of a file that is not nil, its error not yet
// wrapped.
func mapFileRegion(f *os.File, size int, o Options) (*Region, error) {
	if size <= 0 {
		return nil, fmt.Errorf("%d bytes reserved: %w", size, ErrInvalidSize)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("mode %v: %w", st.Mode(), ErrNotRegular)
	}
	if _, dup := mappedFiles.LoadOrStore(f, struct{}{}); dup {
		return nil, fmt.Errorf("this *os.File is mapped already (map each open file once): %w", ErrInUse)
	}
	size = RoundUp(size)
	base, err := reserve(size)
	if err != nil {
		mappedFiles.Delete(f)
		return nil, err
	}
	r := &Region{base: base, size: size, file: f, readOnly: o.ReadOnly, name: o.Name, path: f.Name()}
	if err := r.open(); err != nil {
		unlockAll(f)
		_ = unmap(base, size)
		mappedFiles.Delete(f)
		return nil, err
	}
	r.adviseAll(o)
	return r, nil
}

// mappedFiles holds the *os.File of every live file region. The locks that
// keep a writer from cutting a file under a reader belong to an open of the
// file, so two regions of one open would not be guarded from each other: a
// second MapFile of an *os.File is ErrInUse until the first region closes.
var mappedFiles sync.Map // *os.File -> struct{}

// open takes the region's lock and maps the file as it is now.
func (r *Region) open() error {
	if r.readOnly {
		return r.refresh()
	}
	if err := lockWriter(r.file); err != nil {
		return err
	}
	n, err := fileSize(r.file)
	if err != nil {
		return err
	}
	if n > r.size {
		return fmt.Errorf("%d bytes into %d reserved: %w", n, r.size, ErrExhausted)
	}
	if err := fillHoles(r.file, int64(n)); err != nil {
		return err
	}
	r.fileLen = n
	return r.grow(n)
}

// FileLen returns the length in bytes the file had at MapFile (before a
// writable file was extended to a page multiple) or, for a read-only region,
// at the last Refresh.
func (r *Region) FileLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fileLen
}

// Refresh maps what a read-only region's file holds now and makes it
// FileLen(): the length and the mapping come from one consistent look at the
// file, under the reader lock. On a writable or anonymous region it does
// nothing.
func (r *Region) Refresh() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usable("refresh", ""); err != nil {
		return err
	}
	if !r.readOnly {
		return nil
	}
	if err := r.refresh(); err != nil {
		return r.fail("refresh", "", "", err)
	}
	return nil
}

// lockTries bounds how often a reader retries its lock while a writer cuts
// the file; a cut holds its lock only for one ftruncate.
const lockTries = 2000

// refresh maps the file's current length; callers hold r.mu (or own r).
func (r *Region) refresh() error {
	for range lockTries {
		n, err := fileSize(r.file)
		if err != nil {
			return err
		}
		if n <= r.fileLen {
			return nil
		}
		if n > r.size {
			return fmt.Errorf("%d bytes into %d reserved: %w", n, r.size, ErrExhausted)
		}
		err = r.follow(n, n)
		if errors.Is(err, ErrShortFile) { // cut meanwhile: look again
			continue
		}
		if err != nil {
			return err
		}
		r.fileLen = n
		return nil
	}
	return fmt.Errorf("the file's writer kept cutting it: %w", ErrInUse)
}

// errLocked is what the lock calls return when another open of the file
// holds a conflicting lock.
var errLocked = errors.New("locked by another open of the file")

// lockShared sets the reader lock to cover the first n bytes of the file,
// waiting out a writer that is cutting the file meanwhile.
func (r *Region) lockShared(n int) error {
	for range lockTries {
		err := lockReader(r.file, n)
		if !errors.Is(err, errLocked) {
			return err
		}
		time.Sleep(20 * time.Microsecond)
	}
	return fmt.Errorf("the file's writer kept cutting it: %w", ErrInUse)
}

// follow maps the file of a read-only region up to want bytes once the
// reader lock covers them and the file holds at least need bytes; callers
// hold r.mu. On error nothing changes.
func (r *Region) follow(want, need int) error {
	if err := r.lockShared(max(want, r.shared)); err != nil {
		return err
	}
	n, err := fileSize(r.file)
	if err == nil && n < need {
		err = fmt.Errorf("%d bytes in file: %w", n, ErrShortFile)
	}
	old := r.Len()
	if end := RoundUp(want); err == nil && end > old {
		err = mapFile(r.file, old, unsafe.Add(r.base, old), end-old, ProtRead)
	}
	if err != nil {
		_ = lockReader(r.file, r.shared)
		return err
	}
	r.shared = max(want, r.shared)
	r.ready.Store(int64(RoundUp(r.shared)))
	return nil
}

// extend makes [old, n) of a writable region ready: it extends the file to n
// bytes, allocating its blocks, and maps the new pages. On error the file is
// cut back to its old length (unless a reader has mapped the new part
// meanwhile) and nothing changes.
func (r *Region) extend(old, n int) error {
	size, err := fileSize(r.file)
	if err != nil {
		return err
	}
	if size < n {
		err = extendFile(r.file, int64(size), int64(n))
	}
	if err == nil {
		err = mapFile(r.file, old, unsafe.Add(r.base, old), n-old, ProtReadWrite)
	}
	if err != nil {
		_ = r.cut(int64(size))
	}
	return err
}

// cut shrinks a writable region's file to n bytes if it is longer and no
// reader maps past n; otherwise it leaves the file as it is.
func (r *Region) cut(n int64) error {
	size, err := fileSize(r.file)
	if err != nil || int64(size) <= n {
		return err
	}
	ok, err := lockCut(r.file, n)
	if err != nil || !ok {
		return err
	}
	err = r.file.Truncate(n)
	unlockCut(r.file, n)
	return err
}

// CloseTruncate closes a writable file region, as Close does, and cuts its
// file to n bytes, unless a read-only region (in this process or another)
// still maps the file past n: then the file keeps its length. On a read-only
// or anonymous region it is Close.
func (r *Region) CloseTruncate(n int) error {
	if n < 0 {
		return r.fail("close", "", fmt.Sprintf("cut to %d bytes", n), ErrInvalidSize)
	}
	return r.close(n)
}

// fileSize returns f's length in bytes.
func fileSize(f *os.File) (int, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return int(st.Size()), nil
}

// Sync writes the dirty pages of [off, off+n) to the file and waits for the
// write to finish (msync MS_SYNC). The range is widened to whole pages. On an
// anonymous region it does nothing.
func (r *Region) Sync(off, n int) error { return r.sync("sync", off, n, false) }

// SyncAsync starts writing the dirty pages of [off, off+n) to the file and
// returns without waiting (msync MS_ASYNC).
func (r *Region) SyncAsync(off, n int) error { return r.sync("sync async", off, n, true) }

func (r *Region) sync(op string, off, n int, async bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkRange(off, n, false); err != nil {
		return r.fail(op, span(off, n), "", err)
	}
	if r.file == nil || n == 0 {
		return nil
	}
	start := off &^ (pageSize - 1)
	end := RoundUp(off + n)
	if err := msync(unsafe.Add(r.base, start), end-start, async); err != nil {
		return r.fail(op, span(off, n), "", err)
	}
	return nil
}
