// File-backed Memory: open (create or reopen), follow a writer read-only.

package mapped

import (
	"fmt"
	"os"

	"github.com/offheap/offheap/vmem"
)

// OpenFile maps the file at path, creating it if it does not exist (unless
// opts.ReadOnly). The written prefix is the file's whole contents, so a file
// closed by Close reads back exactly what was written; appends continue at
// its end. A file whose writer did not Close (a crash) runs past what was
// written by up to one growth step of zero bytes, and they are part of the
// written prefix; formats on top record their own length (as column does). A
// read-only Memory rejects every write with ErrReadOnly (Put* panic) and sees
// what other writers append once Refresh is called.
func OpenFile(path string, opts *Options) (*Memory, error) {
	o, err := optionsOf(opts)
	if err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = path
	}
	flag := os.O_RDWR | os.O_CREATE
	if o.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mapped: open %q: %w", o.Name, err)
	}
	m, err := mapFile(f, o)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return m, nil
}

func mapFile(f *os.File, o Options) (*Memory, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mapped: open %q: %w", o.Name, err)
	}
	size := int(st.Size())
	r, err := vmem.MapFile(f, o.Reserve, &vmem.Options{Name: o.Name, ReadOnly: o.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("mapped: open %q: %w", o.Name, err)
	}
	m := &Memory{region: r, file: f, extend: o.ExtendSize, ro: o.ReadOnly, name: o.Name, len: size, hwm: size}
	m.base = regionBase(r)
	if m.ro {
		m.wshort = readOnlyShort
	} else {
		m.avail = r.Len()
	}
	m.watch()
	m.checkInvariants()
	return m, nil
}

// Refresh makes a read-only Memory see the file as it is now: its written
// prefix becomes the file's current length, so what a writer appended since
// can be read. Views handed out earlier stay valid. A writer's file runs past
// its append offset by up to one growth step of zero bytes until it is
// closed, so a format on top of Memory should record its own committed length
// (as package column does). On writable memory Refresh does nothing.
func (m *Memory) Refresh() error {
	if m.region == nil {
		return fmt.Errorf("mapped: refresh %q: %w", m.name, ErrClosed)
	}
	if !m.ro {
		return nil
	}
	st, err := m.file.Stat()
	if err != nil {
		return fmt.Errorf("mapped: refresh %q: %w", m.name, err)
	}
	size := int(st.Size())
	if size <= m.len {
		return nil
	}
	if err := m.region.Grow(size); err != nil {
		return fmt.Errorf("mapped: refresh %q to %d bytes: %w", m.name, size, err)
	}
	m.base = regionBase(m.region)
	m.len = size
	m.checkInvariants()
	return nil
}
