// Fixed-width columns: one file, a header page then one T per row.

package column

import (
	"fmt"
	"reflect"

	"github.com/offheap/offheap/mapped"
)

// windowRows is how many rows a Fixed claims from its memory at a time, so
// that most appends are a store into an already-claimed []T.
const windowRows = 4096

// Fixed is a column of fixed-size numbers of type T in one file: the header
// page, then row i's value at byte HeaderSize + i*sizeof(T), in the machine's
// byte order. Values returns all rows as a []T without copying.
//
// # Appending
//
// Appends claim windowRows rows of the file at a time (the memory's append
// offset moves ahead by a window) and then store each value straight into
// the window, a []T over the mapping. Sync and Close cut the file back to the
// rows actually appended; a crash leaves the claimed but unused rows, which
// the header does not count and reopening drops.
//
// # Invariants
//
//   - rows <= len(win); win is the claimed part of the file, rows
//     [0, len(win)), and the memory's Len() == HeaderSize + len(win)*size.
//   - committed <= rows; the header's last slot counts committed rows, and
//     they are durable.
//
// A Fixed is not safe for concurrent use when one goroutine appends, syncs or
// closes it; reads from many goroutines at once are fine. Close unmaps the
// file, so a read racing it may fault, as a use of freed memory would.
type Fixed[T mapped.Number] struct {
	win       []T // the claimed rows, a view of the file
	rows      int
	committed int
	size      int
	h         *headerFile
}

// OpenFixed opens the fixed column at path, creating it if it does not exist.
// A reopened column has the rows of its last commit (the last Sync or Close);
// rows appended after it are dropped. A file of another column type is
// ErrMismatch; one without a valid header is ErrCorrupt.
func OpenFixed[T mapped.Number](path string, opts *Options) (*Fixed[T], error) {
	t := reflect.TypeFor[T]()
	size := int(t.Size())
	want := header{kind: kindFixed, size: uint8(size), typ: uint8(t.Kind())}
	h, err := openHeader(path, want, opts)
	if err != nil {
		return nil, err
	}
	if h.fresh {
		if err := h.create(); err != nil {
			h.discard()
			return nil, err
		}
	}
	c := &Fixed[T]{h: h, size: size, rows: int(h.last.rows), committed: int(h.last.rows)}
	if err := c.dropUncommitted(); err != nil {
		h.discard()
		return nil, fail("open", path, "", err)
	}
	return c, nil
}

// dropUncommitted cuts the file back to the committed rows.
func (c *Fixed[T]) dropUncommitted() error {
	if c.rows < 0 || c.rows > (c.h.m.Len()-HeaderSize)/c.size {
		return fmt.Errorf("header counts %d rows, file holds %d bytes: %w", c.rows, c.h.m.Len(), ErrCorrupt)
	}
	return c.claim(c.rows)
}

// claim sets the claimed rows to n (at least rows), moving the memory's
// append offset to match. On error nothing changes.
func (c *Fixed[T]) claim(n int) error {
	if err := c.h.m.Jump(HeaderSize + n*c.size); err != nil {
		return fail("append to", c.h.name, "", err)
	}
	c.win = mapped.Slice[T](c.h.m, HeaderSize, n)
	return nil
}

// Rows returns the number of rows.
func (c *Fixed[T]) Rows() int { return c.rows }

// Committed returns the number of rows the last Sync made durable.
func (c *Fixed[T]) Committed() int { return c.committed }

// Append appends a row. On error (the reservation or the disk is full, the
// column is closed) nothing changes.
func (c *Fixed[T]) Append(v T) error {
	if c.rows < len(c.win) {
		c.win[c.rows] = v
		c.rows++
		return nil
	}
	return c.appendSlow(v)
}

// appendSlow claims the next window (or, near the end of the reservation,
// the next row alone) and appends v to it.
func (c *Fixed[T]) appendSlow(v T) error {
	if err := c.h.usable("append to"); err != nil {
		return err
	}
	if err := c.claim(c.rows + windowRows); err != nil {
		if err := c.claim(c.rows + 1); err != nil {
			return err
		}
	}
	return c.Append(v)
}

// Get returns row i. It panics with a RowError when i is not a row.
func (c *Fixed[T]) Get(i int) T {
	if uint(i) >= uint(c.rows) {
		panic(RowError{i, c.rows})
	}
	return c.win[i]
}

// Values returns every row as a slice sharing the file's memory (zero-copy).
// It stays valid until Close, but does not grow with later appends; call
// Values again to see them.
func (c *Fixed[T]) Values() []T { return c.win[:c.rows:c.rows] }

// Sync makes every row appended so far durable: it flushes them to the file,
// waits, and only then commits their count to the header.
func (c *Fixed[T]) Sync() error {
	if err := c.h.usable("sync"); err != nil {
		return err
	}
	from, to := HeaderSize+c.committed*c.size, HeaderSize+c.rows*c.size
	if err := c.h.m.SyncRange(from, to-from); err != nil {
		return fail("sync", c.h.name, "", err)
	}
	if err := c.h.commit(c.rows, 0); err != nil {
		return err
	}
	c.committed = c.rows
	return nil
}

// Close commits every row (as Sync), unmaps the file and truncates it to
// its rows. Views handed out become invalid. If the commit fails the file is
// closed all the same, holding the rows of the last successful commit.
func (c *Fixed[T]) Close() error {
	if err := c.h.usable("close"); err != nil {
		return err
	}
	err := c.claim(c.rows) // give back the unused window, so Close truncates it
	if err == nil {
		err = c.Sync()
	}
	c.win = nil
	return c.h.close(err)
}
