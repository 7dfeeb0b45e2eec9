// File-backed Memory: open (create or reopen), follow a writer read-only.

package mapped

import (
	"fmt"
	"os"
	"syscall"

	"github.com/offheap/offheap/internal/errs"
	"github.com/offheap/offheap/vmem"
)

// OpenFile maps the regular file at path, creating it if it does not exist
// (unless opts.ReadOnly). The written prefix is the file's whole contents, so
// a file closed by Close reads back exactly what was written; appends
// continue at its end.
//
// A file whose writer did not Close (a crash) runs past what was written
// with zero bytes, up to the end of the last growth step, and they are part
// of the written prefix; formats on top record their own length (as column
// does). Bytes a Jump back dropped are zero too, never the old data (a
// crash inside a Jump, before it returns, may leave part of what it was
// dropping).
//
// A file can have one writable Memory at a time: opening it for writing
// again, in this process or another, is vmem.ErrInUse until the first is
// closed. A read-only Memory coexists with the writer: it rejects every write
// with ErrReadOnly (Put* panic), sees what the writer appends once Refresh is
// called, and never faults, whatever the writer does, since the writer never
// cuts the file below what a reader maps (see vmem.MapFile). Opening a
// directory, FIFO or device is vmem.ErrNotRegular; the open never blocks.
func OpenFile(path string, opts *Options) (*Memory, error) {
	o, err := optionsOf(opts)
	if err != nil {
		return nil, err
	}
	flag := os.O_RDWR | os.O_CREATE
	if o.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag|syscall.O_NONBLOCK, 0o644) // O_NONBLOCK: a FIFO must not block the open
	if err != nil {
		return nil, errs.New(head(o.Name, "open", path, ""), "", err)
	}
	m, err := mapFile(f, o)
	if err != nil {
		_ = f.Close()
		return nil, errs.New(head(o.Name, "open", path, ""), "", err)
	}
	return m, nil
}

// mapFile maps the open file f; the Memory owns f from here.
func mapFile(f *os.File, o Options) (*Memory, error) {
	r, err := vmem.MapFile(f, o.Reserve, &vmem.Options{Name: o.Name, ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, err
	}
	size := r.FileLen()
	if size > o.Reserve {
		_ = r.Close()
		return nil, fmt.Errorf("%d bytes into %d reserved: %w", size, o.Reserve, vmem.ErrExhausted)
	}
	m := &Memory{region: r, file: f, extend: o.ExtendSize, limit: o.Reserve, ro: o.ReadOnly,
		name: o.Name, path: f.Name(), len: size, avail: -1}
	m.base = regionBase(r)
	if m.ro {
		m.wshort = readOnlyShort
	} else {
		m.avail = min(r.Len(), m.limit)
	}
	m.watch()
	m.checkInvariants()
	return m, nil
}

// Refresh makes a read-only Memory see the file as it is now: its written
// prefix becomes the file's current length, so what a writer appended since
// can be read. Views handed out earlier stay valid. A writer's file runs past
// its append offset with zero bytes until it is closed, so a format on top of
// Memory should record its own committed length (as package column does). On
// writable memory Refresh does nothing.
func (m *Memory) Refresh() error {
	if m.region == nil {
		return m.fail("refresh", "", "", ErrClosed)
	}
	if !m.ro {
		return nil
	}
	if err := m.region.Refresh(); err != nil {
		return m.fail("refresh", "", "", err)
	}
	if n := m.region.FileLen(); n > m.limit {
		return m.fail("refresh", "", fmt.Sprintf("%d bytes into %d reserved", n, m.limit), vmem.ErrExhausted)
	}
	m.len = max(m.len, m.region.FileLen())
	m.base = regionBase(m.region)
	m.checkInvariants()
	return nil
}
