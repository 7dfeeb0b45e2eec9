// Variable-width columns: a data file of length-prefixed values and an index
// file of each row's offset into it.

package column

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/offheap/offheap/mapped"
)

// DataSuffix is appended to a variable column's path to name its data file.
const DataSuffix = ".data"

// Var is a column of strings or binary values (null distinct from empty) in
// two files: the data file, path+DataSuffix, holds each value as an int32
// length (-1 for null) and its bytes, as mapped.Memory stores them; the index
// file, path, holds the header page and then row i's offset into the data
// file as an int64 at HeaderSize + 8i. Reads are zero-copy.
//
// # Invariants
//
//   - index Len() == HeaderSize + 8*rows; the data file's Len() is the end
//     of the last row's value.
//   - committed <= rows; the header's last slot counts committed rows and
//     the data length they end at, and both files are durable up to them.
//
// A Var is not safe for concurrent use when one goroutine appends, syncs or
// closes it; reads from many goroutines at once are fine. Close unmaps the
// files, so a read racing it may fault, as a use of freed memory would.
type Var struct {
	h         *headerFile
	data      *mapped.Memory
	rows      int
	committed int
	dataSync  int // data file length at the last commit
}

// OpenVar opens the variable column at path (and path+DataSuffix), creating
// it if it does not exist. A reopened column has the rows of its last commit;
// rows appended after it are dropped. A data file holding bytes whose index
// file is missing, empty or zeroed is ErrCorrupt, as is an index with commits
// whose data file is missing; both files are then left as they were.
func OpenVar(path string, opts *Options) (*Var, error) {
	dataPath := path + DataSuffix
	if n, _ := fileLen(dataPath); n > 0 && !exists(path) { // checked first so as not to create the index
		return nil, fail("open", path, fmt.Sprintf("no index file for the %d bytes of %s", n, dataPath), ErrCorrupt)
	}
	h, err := openHeader(path, header{kind: kindVar, size: 8}, opts)
	if err != nil {
		return nil, err
	}
	// The index file's writer lock keeps every other open of this column out.
	data, dataNew, err := openData(h, dataPath, opts)
	if err != nil {
		h.discard()
		return nil, err
	}
	c := &Var{h: h, data: data, rows: int(h.last.rows), committed: int(h.last.rows), dataSync: int(h.last.data)}
	if h.fresh { // after the data file exists: create syncs the directory, making both names durable
		err = h.create()
	}
	if err == nil {
		err = c.dropUncommitted()
	}
	if err != nil {
		if dataNew && h.fresh {
			_ = os.Remove(dataPath)
		}
		_ = data.Close()
		h.discard()
		return nil, err
	}
	return c, nil
}

// openData opens the data file of the variable column whose index file is
// h, creating it if h is fresh: a fresh index needs a missing or empty data
// file, an index with commits an existing one. created reports whether this
// open created the file.
func openData(h *headerFile, path string, opts *Options) (m *mapped.Memory, created bool, err error) {
	n, ok := fileLen(path)
	switch {
	case h.fresh && n > 0:
		return nil, false, fail("open", h.name, fmt.Sprintf("index without a commit for the %d bytes of %s", n, path), ErrCorrupt)
	case !h.fresh && !ok:
		return nil, false, fail("open", h.name, fmt.Sprintf("commit %d counts %d data bytes, but %s is missing", h.last.seq, h.last.data, path), ErrCorrupt)
	}
	if m, err = mapped.OpenFile(path, opts.mapped()); err != nil {
		return nil, false, fail("open", path, "", err)
	}
	return m, !ok, nil
}

// fileLen returns the length of the file at path and whether it exists. An
// error other than "does not exist" counts as existing, and a directory,
// FIFO or device as empty: why such a file is no data file shows when it is
// opened.
func fileLen(path string) (int64, bool) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, !errors.Is(err, fs.ErrNotExist)
	}
	if !st.Mode().IsRegular() {
		return 0, true
	}
	return st.Size(), true
}

// dropUncommitted checks the committed rows and cuts both files back to them.
func (c *Var) dropUncommitted() error {
	if c.rows < 0 || c.rows > (c.h.m.Len()-HeaderSize)/8 || c.dataSync < 0 || c.dataSync > c.data.Len() {
		return fail("open", c.h.name, fmt.Sprintf("header counts %d rows of %d data bytes, files hold %d and %d bytes",
			c.rows, c.dataSync, c.h.m.Len(), c.data.Len()), ErrCorrupt)
	}
	if err := c.verify(); err != nil {
		return fail("open", c.h.name, "", err)
	}
	if err := c.h.m.Jump(HeaderSize + 8*c.rows); err != nil {
		return fail("open", c.h.name, "", err)
	}
	if err := c.data.Jump(c.dataSync); err != nil {
		return fail("open", c.data.Name(), "", err)
	}
	return nil
}

// verify checks that the committed rows are laid out as appends lay them
// out: row 0 at offset 0, each value (an int32 length, -1 for null, then its
// bytes) ending where the next row's begins, and the last ending at the
// committed data length. So no read of a row can leave the data file: an
// index or data file damaged so that one would is ErrCorrupt at open, never
// a panic at a read. It reads every row's offset and length once.
func (c *Var) verify() error {
	offs := mapped.Slice[int64](c.h.m, HeaderSize, c.rows)
	data := c.data.Bytes(0, c.dataSync)
	end := 0
	for i, off := range offs {
		if off != int64(end) || end > len(data)-4 {
			return fmt.Errorf("row %d at data offset %d, want %d of %d committed: %w", i, off, end, len(data), ErrCorrupt)
		}
		n := int(int32(binary.NativeEndian.Uint32(data[end:])))
		if n < -1 || n > len(data)-end-4 {
			return fmt.Errorf("row %d at data offset %d has length %d, %d committed: %w", i, end, n, len(data), ErrCorrupt)
		}
		end += 4 + max(n, 0)
	}
	if end != len(data) {
		return fmt.Errorf("%d rows end at data offset %d, the header commits %d: %w", c.rows, end, len(data), ErrCorrupt)
	}
	return nil
}

// Rows returns the number of rows.
func (c *Var) Rows() int { return c.rows }

// Committed returns the number of rows the last Sync made durable.
func (c *Var) Committed() int { return c.committed }

// AppendStr appends a string row. On error nothing changes.
func (c *Var) AppendStr(s string) error {
	off := c.data.Len()
	return c.index(off, c.data.AppendStr(s))
}

// AppendBin appends a binary row; a nil b is null. On error nothing changes.
func (c *Var) AppendBin(b []byte) error {
	off := c.data.Len()
	return c.index(off, c.data.AppendBin(b))
}

// AppendNull appends a null row. On error nothing changes.
func (c *Var) AppendNull() error {
	off := c.data.Len()
	return c.index(off, c.data.AppendNull())
}

// index records a row whose value was appended to the data file at off (if
// err is nil), undoing that append if the index cannot grow.
func (c *Var) index(off int, err error) error {
	if err != nil {
		return fail("append to", c.h.name, "", err)
	}
	if err := c.h.m.AppendInt64(int64(off)); err != nil {
		_ = c.data.Jump(off) // moving back never fails on writable memory
		return fail("append to", c.h.name, "", err)
	}
	c.rows++
	return nil
}

// offset returns where row i's value starts in the data file, panicking with
// a RowError when i is not a row.
func (c *Var) offset(i int) int {
	if uint(i) >= uint(c.rows) {
		panic(RowError{i, c.rows})
	}
	return int(c.h.m.Int64(HeaderSize + 8*i))
}

// Str returns row i and true, or "" and false for a null row. The string
// shares the file's memory (zero-copy) and is valid until Close.
func (c *Var) Str(i int) (string, bool) { return c.data.Str(c.offset(i)) }

// Bin returns row i as a view of the file's memory, valid until Close: nil
// for a null row, empty but not nil for an empty one.
func (c *Var) Bin(i int) []byte { return c.data.Bin(c.offset(i)) }

// Sync makes every row appended so far durable: it flushes the data and
// index files, waits, and only then commits the row count to the header.
func (c *Var) Sync() error {
	if err := c.h.usable("sync"); err != nil {
		return err
	}
	if err := syncTail(c.data, c.dataSync, c.data.Name()); err != nil {
		return err
	}
	if err := syncTail(c.h.m, HeaderSize+8*c.committed, c.h.name); err != nil {
		return err
	}
	if err := c.h.commit(c.rows, c.data.Len()); err != nil {
		return err
	}
	c.committed, c.dataSync = c.rows, c.data.Len()
	return nil
}

// Close commits every row (as Sync) and closes both files, truncating them.
// Views handed out become invalid. If the commit fails the files are closed
// all the same, holding the rows of the last successful commit.
func (c *Var) Close() error {
	if err := c.h.usable("close"); err != nil {
		return err
	}
	err := c.h.close(c.Sync())
	if derr := c.data.Close(); derr != nil {
		err = joinErr(err, fail("close", c.data.Name(), "", derr))
	}
	return err
}
