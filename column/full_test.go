package column_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"

	"github.com/offheap/offheap/column"
	"github.com/offheap/offheap/internal/testfs"
)

// TestFullDiskWithoutFallocateKeepsSyncedRows fills a small ext2 file system
// (which has no fallocate) with a fixed column and then a variable one: the
// append that finds no room must fail with ENOSPC (not kill the process with
// SIGBUS), and every synced row must be there after reopening.
func TestFullDiskWithoutFallocateKeepsSyncedRows(t *testing.T) {
	dir := testfs.Ext2(t, 2<<20)
	o := &column.Options{ExtendSize: 64 << 10}
	fixedPath := filepath.Join(dir, "f")
	fillColumn(t, "fixed", func() (appender, error) {
		f, err := column.OpenFixed[int64](fixedPath, o)
		return fixedAppender{f}, err
	})
	f := openFixed[int64](t, fixedPath, nil)
	for i, x := range f.Values() {
		if x != fixedRow(i) {
			t.Fatalf("fixed row %d of %d is %#x", i, f.Rows(), x)
		}
	}
	_ = f.Close()
	if err := os.Remove(fixedPath); err != nil {
		t.Fatal(err)
	}
	varPath := filepath.Join(dir, "v")
	fillColumn(t, "var", func() (appender, error) { v, err := column.OpenVar(varPath, o); return varAppender{v}, err })
	v := openVar(t, varPath, nil)
	defer v.Close()
	for i := range v.Rows() {
		if s, _ := v.Str(i); s != varValue(i) {
			t.Fatalf("var row %d of %d is %q", i, v.Rows(), s)
		}
	}
}

// appender is what fillColumn needs of a column.
type appender interface {
	Append(i int) error
	Rows() int
	Sync() error
	Close() error
}

type fixedAppender struct{ *column.Fixed[int64] }

func (f fixedAppender) Append(i int) error { return f.Fixed.Append(fixedRow(i)) }

type varAppender struct{ *column.Var }

func (v varAppender) Append(i int) error { return v.AppendStr(varValue(i)) }

func varValue(i int) string { return fmt.Sprintf("%0*d", 8+i%50, i) }

// fillColumn appends rows to the column open returns until an append fails,
// syncing every 5000 rows, checks the failure is ENOSPC, closes the column
// and checks a reopen has at least the rows synced. A fault (SIGBUS from a
// store into a block the file system could not allocate) fails the test.
func fillColumn(t *testing.T, name string, open func() (appender, error)) {
	t.Helper()
	c, err := open()
	if err != nil {
		t.Fatal(err)
	}
	synced, appendErr := 0, error(nil)
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("%s column faulted after %d rows (%d synced): %v", name, c.Rows(), synced, p)
			}
		}()
		for appendErr == nil {
			if appendErr = c.Append(c.Rows()); appendErr == nil && c.Rows()%5000 == 0 {
				if appendErr = c.Sync(); appendErr == nil {
					synced = c.Rows()
				}
			}
		}
	}()
	if !errors.Is(appendErr, syscall.ENOSPC) {
		t.Fatalf("%s column on a full disk after %d rows: %v, want ENOSPC", name, c.Rows(), appendErr)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("%s column: close on a full disk: %v", name, err)
	}
	c, err = open()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Rows() < synced || synced == 0 {
		t.Fatalf("%s column reopened with %d rows; %d were synced", name, c.Rows(), synced)
	}
	t.Logf("%s column: %d rows on the full disk, %d synced", name, c.Rows(), synced)
}

// TestSparseFileOnFullDisk opens a sparse file of zeros (taken for a
// create that never finished) larger than the disk, on tmpfs, where even
// reading a hole through a mapping takes a page: the open must fail with
// ENOSPC and leave the file as it was, never die with SIGBUS.
func TestSparseFileOnFullDisk(t *testing.T) {
	dir := testfs.Tmpfs(t, 4<<20)
	for name, open := range map[string]func(string) error{
		"fixed": func(p string) error { c, err := column.OpenFixed[int64](p, nil); closeIf(c, err); return err },
		"var":   func(p string) error { c, err := column.OpenVar(p, nil); closeIf(c, err); return err },
	} {
		path := filepath.Join(dir, name)
		writeFile(t, path, 16<<20, nil)
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("fault: %v", p)
				}
			}()
			err = open(path)
		}()
		if !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s column over a 16 MiB sparse file on a 4 MiB disk: %v, want ENOSPC", name, err)
		}
		if st, serr := os.Stat(path); serr != nil || st.Size() != 16<<20 {
			t.Errorf("%s: the failed open changed the file (%v)", name, serr)
		}
		if _, serr := os.Stat(path + column.DataSuffix); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("%s: the failed open left a data file (%v)", name, serr)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}
