package column_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/offheap/offheap/column"
	"github.com/offheap/offheap/vmem"
)

// fileState is a file's bytes, or its absence.
type fileState struct {
	b      []byte
	exists bool
}

func stateOf(t *testing.T, path string) fileState {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileState{}
	}
	if err != nil {
		t.Fatal(err)
	}
	return fileState{b, true}
}

func (s fileState) equal(o fileState) bool { return s.exists == o.exists && bytes.Equal(s.b, o.b) }

func (s fileState) String() string {
	if !s.exists {
		return "missing"
	}
	return fmt.Sprintf("%d bytes", len(s.b))
}

// writeFile makes a file of n zero bytes (a hole, where the file system
// can) with the given bytes written at the given offsets.
func writeFile(t *testing.T, path string, n int64, at map[int64]string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(n); err != nil {
		t.Fatal(err)
	}
	for off, s := range at {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNonColumnFileWithZeroSlotUntouched: a file without a valid header is
// taken for an unfinished create only when every byte outside the first
// commit's slot is zero; any other is ErrCorrupt and left as it was, even
// with an all-zero header slot (a sparse or preallocated file, a disk image
// with an empty first sector).
func TestNonColumnFileWithZeroSlotUntouched(t *testing.T) {
	dir := t.TempDir()
	files := map[string]func(path string){
		"zero first page, data after": func(p string) { writeFile(t, p, 8192, map[int64]string{4096: "disk image"}) },
		"sparse, data far in":         func(p string) { writeFile(t, p, 1<<20, map[int64]string{600000: "hello"}) },
		"zero slots, bytes between":   func(p string) { writeFile(t, p, 4096, map[int64]string{2000: "x"}) },
		"zero second slot, junk first": func(p string) {
			writeFile(t, p, 4096, map[int64]string{0: "not a column header"})
		},
		"short, zero slot": func(p string) { writeFile(t, p, 600, map[int64]string{580: "y"}) },
	}
	for name, make := range files {
		for kind, open := range map[string]func(string) error{
			"fixed": func(p string) error { c, err := column.OpenFixed[int64](p, nil); closeIf(c, err); return err },
			"var":   func(p string) error { c, err := column.OpenVar(p, nil); closeIf(c, err); return err },
		} {
			path := filepath.Join(dir, name+" "+kind)
			make(path)
			before := stateOf(t, path)
			if err := open(path); !errors.Is(err, column.ErrCorrupt) {
				t.Errorf("%s as a %s column: %v, want ErrCorrupt", name, kind, err)
			}
			if after := stateOf(t, path); !after.equal(before) {
				t.Errorf("%s as a %s column: the file changed from %v to %v", name, kind, before, after)
			}
			if s := stateOf(t, path+column.DataSuffix); s.exists {
				t.Errorf("%s as a %s column: a failed open left a data file", name, kind)
			}
		}
	}
}

// closeIf closes what an open returned, if it succeeded.
func closeIf(c interface{ Close() error }, err error) {
	if err == nil {
		_ = c.Close()
	}
}

// TestUnfinishedCreateOpensEmpty: files a create that never finished can
// leave (nothing written but, perhaps, a torn first slot) open as new
// empty columns.
func TestUnfinishedCreateOpensEmpty(t *testing.T) {
	dir := t.TempDir()
	for name, at := range map[string]map[int64]string{
		"all zero":        nil,
		"torn first slot": {512: "\x4f\x48\x43\x4c\x01\x00garbage"},
	} {
		path := filepath.Join(dir, name)
		writeFile(t, path, 1<<20, at)
		c, err := column.OpenFixed[int32](path, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.Rows() != 0 {
			t.Fatalf("%s: %d rows", name, c.Rows())
		}
		if err := c.Append(7); err != nil || c.Close() != nil {
			t.Fatalf("%s: column unusable", name)
		}
	}
}

// varColumn makes a variable column of rows rows in dir and returns its path.
func varColumn(t *testing.T, dir string, rows int) string {
	t.Helper()
	path := filepath.Join(dir, "v")
	c := openVar(t, path, nil)
	for i := range rows {
		if err := c.AppendStr(fmt.Sprintf("row %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestVarWithoutIndexKeepsData: a data file with rows whose index file is
// missing, empty or zeroed is ErrCorrupt, and neither file changes (the
// data file is not cut to nothing, no index file appears).
func TestVarWithoutIndexKeepsData(t *testing.T) {
	for name, spoil := range map[string]func(index string) error{
		"missing": os.Remove,
		"empty":   func(p string) error { return os.Truncate(p, 0) },
		"zeroed": func(p string) error {
			st, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.WriteFile(p, make([]byte, st.Size()), 0o644)
		},
	} {
		path := varColumn(t, t.TempDir(), 100)
		if err := spoil(path); err != nil {
			t.Fatal(err)
		}
		index, data := stateOf(t, path), stateOf(t, path+column.DataSuffix)
		c, err := column.OpenVar(path, nil)
		closeIf(c, err)
		if !errors.Is(err, column.ErrCorrupt) {
			t.Errorf("index %s: %v, want ErrCorrupt", name, err)
		}
		if s := stateOf(t, path); !s.equal(index) {
			t.Errorf("index %s: the index file changed from %v to %v", name, index, s)
		}
		if s := stateOf(t, path+column.DataSuffix); !s.equal(data) {
			t.Errorf("index %s: the data file changed from %v to %v", name, data, s)
		}
	}
}

// TestFailedOpenVarLeavesNoDataFile: an OpenVar that fails creates no data
// file, whatever the index file holds.
func TestFailedOpenVarLeavesNoDataFile(t *testing.T) {
	dir := t.TempDir()
	committed := varColumn(t, filepath.Join(dir), 10)
	if err := os.Remove(committed + column.DataSuffix); err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(dir, "damaged")
	writeFile(t, damaged, 8192, map[int64]string{9: "torn", 600: "torn"})
	for _, path := range []string{committed, damaged} {
		c, err := column.OpenVar(path, nil)
		closeIf(c, err)
		if !errors.Is(err, column.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", path, err)
		}
		if s := stateOf(t, path+column.DataSuffix); s.exists {
			t.Errorf("%s: a failed OpenVar left a data file of %v", path, s)
		}
	}
}

// TestErrorText pins the shape of column's errors.
func TestErrorText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "price")
	writeFile(t, path, 8192, map[int64]string{100: "not a column"})
	_, err := column.OpenFixed[float64](path, nil)
	if want := "column: open " + path + ": no valid header slot: file is damaged"; err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	_, err = column.OpenFixed[float64](filepath.Join(path, "x", "y"), nil)
	if want := "column: open " + filepath.Join(path, "x", "y") + ": not a directory"; err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// TestVarWithSpecialDataFile: a directory, FIFO or device where a variable
// column's data file belongs is reported as what it is (not as a damaged
// column), and the failed open leaves no index file behind.
func TestVarWithSpecialDataFile(t *testing.T) {
	dir := t.TempDir()
	for name, make := range map[string]func(string) error{
		"directory": func(p string) error { return os.Mkdir(p, 0o755) },
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"device":    func(p string) error { return os.Symlink("/dev/zero", p) },
	} {
		path := filepath.Join(dir, name)
		if err := make(path + column.DataSuffix); err != nil {
			t.Fatal(err)
		}
		c, err := column.OpenVar(path, nil)
		closeIf(c, err)
		if !errors.Is(err, vmem.ErrNotRegular) && !errors.Is(err, syscall.EISDIR) {
			t.Errorf("data file a %s: %v, want vmem.ErrNotRegular or EISDIR", name, err)
		}
		if s := stateOf(t, path); s.exists {
			t.Errorf("data file a %s: the failed open left an index file of %v", name, s)
		}
	}
}
