// File-backed regions: a file mapped into a reservation, extended in place as
// the file grows, and flushed with msync.

package vmem

import (
	"fmt"
	"os"
	"unsafe"
)

// MapFile reserves size bytes of address space and maps f into its start.
// The whole current file is made ready (a writable file is first extended to a
// page multiple, so no ready page lies past its end). Grow maps more as the
// file grows: a writable region extends the file itself (fallocate, so a full
// disk is an error here and not a fault later), a read-only one maps what
// another writer has appended. The caller keeps ownership of f and must keep it
// open until Close.
func MapFile(f *os.File, size int, opts *Options) (*Region, error) {
	o := optionsOf(opts)
	if o.Name == "" {
		o.Name = f.Name()
	}
	if size <= 0 {
		return nil, fmt.Errorf("vmem: map file %q with %d bytes reserved: %w", o.Name, size, ErrInvalidSize)
	}
	size = RoundUp(size)
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("vmem: map file %q: %w", o.Name, err)
	}
	if int64(size) < st.Size() {
		return nil, fmt.Errorf("vmem: map file %q of %d bytes into %d reserved: %w", o.Name, st.Size(), size, ErrExhausted)
	}
	base, err := reserve(size)
	if err != nil {
		return nil, fmt.Errorf("vmem: map file %q: reserve %d bytes: %w", o.Name, size, err)
	}
	r := &Region{base: base, size: size, file: f, readOnly: o.ReadOnly, name: o.Name}
	r.adviseAll(o)
	if err := r.Grow(int(st.Size())); err != nil {
		_ = unmap(base, size)
		return nil, err
	}
	return r, nil
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
	if err := r.usable(op); err != nil {
		return err
	}
	if off < 0 || n < 0 || off > r.Len()-n {
		return fmt.Errorf("vmem: %s %q [%d, +%d) of %d ready: %w", op, r.name, off, n, r.Len(), ErrInvalidSize)
	}
	if r.file == nil || n == 0 {
		return nil
	}
	start := off &^ (pageSize - 1)
	end := RoundUp(off + n)
	if err := msync(unsafe.Add(r.base, start), end-start, async); err != nil {
		return fmt.Errorf("vmem: %s %q [%d, %d): %w", op, r.name, off, off+n, err)
	}
	return nil
}
