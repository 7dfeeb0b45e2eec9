package vmem

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// fileLenT returns the length of the file at path.
func fileLenT(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// openFileT opens path read-write (or read-only), creating it.
func openFileT(t *testing.T, path string, readOnly bool) *os.File {
	t.Helper()
	flag := os.O_RDWR | os.O_CREATE
	if readOnly {
		flag = os.O_RDONLY
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// TestFailedMapFileOrGrowLeavesFileLength: a MapFile or Grow that fails
// after the file was extended cuts it back, so the file is as it was.
func TestFailedMapFileOrGrowLeavesFileLength(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("not a page long"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := openFileT(t, path, false)
	restore := injected(t, &mapFile, func(*os.File, int, unsafe.Pointer, int, Prot) error { return syscall.ENOMEM })
	if _, err := MapFile(f, 64*PageSize(), nil); !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("MapFile with mmap failing: %v", err)
	}
	if n := fileLenT(t, path); n != 15 {
		t.Fatalf("failed MapFile left the file %d bytes long, want 15", n)
	}
	restore()
	r, err := MapFile(f, 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	injected(t, &mapFile, func(*os.File, int, unsafe.Pointer, int, Prot) error { return syscall.ENOMEM })
	if err := r.Grow(8 * PageSize()); !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("Grow with mmap failing: %v", err)
	}
	if n := fileLenT(t, path); n != int64(PageSize()) || r.Len() != PageSize() {
		t.Fatalf("failed Grow left the file %d bytes long and %d ready, want one page", n, r.Len())
	}
}

// TestPartialExtensionCutBack: growth that fails after extending the file
// part of the way (as ENOSPC midway does) cuts it back too.
func TestPartialExtensionCutBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f := openFileT(t, path, false)
	r, err := MapFile(f, 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	injected(t, &extendFile, func(f *os.File, size, n int64) error {
		if err := writeZeros(f, size, (size+n)/2); err != nil {
			return err
		}
		return syscall.ENOSPC
	})
	if err := r.Grow(16 * PageSize()); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Grow with a half-done extension: %v", err)
	}
	if n := fileLenT(t, path); n != 0 || r.Len() != 0 {
		t.Fatalf("failed Grow left the file %d bytes long and %d ready, want 0", n, r.Len())
	}
}

// TestSecondWriterInUse: a file has one writable region at a time, in one
// process as across processes; read-only regions coexist with it.
func TestSecondWriterInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	w, err := MapFile(openFileT(t, path, false), 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := MapFile(openFileT(t, path, false), 64*PageSize(), nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second writable MapFile: %v, want ErrInUse", err)
	}
	r, err := MapFile(openFileT(t, path, true), 64*PageSize(), &Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only MapFile beside the writer: %v", err)
	}
	defer r.Close()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w2, err := MapFile(openFileT(t, path, false), 64*PageSize(), nil)
	if err != nil {
		t.Fatalf("writable MapFile after the first writer closed: %v", err)
	}
	_ = w2.Close()
}

// TestCloseTruncateKeepsWhatReaderMaps: a writer's CloseTruncate cuts the
// file only as far as no reader maps.
func TestCloseTruncateKeepsWhatReaderMaps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	w, err := MapFile(openFileT(t, path, false), 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Grow(8 * PageSize()); err != nil {
		t.Fatal(err)
	}
	r, err := MapFile(openFileT(t, path, true), 64*PageSize(), &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.FileLen() != 8*PageSize() || r.Len() != 8*PageSize() {
		t.Fatalf("reader maps %d bytes of a %d-byte file", r.Len(), r.FileLen())
	}
	if err := w.CloseTruncate(10); err != nil {
		t.Fatal(err)
	}
	if n := fileLenT(t, path); n != int64(8*PageSize()) {
		t.Fatalf("writer cut the file to %d bytes under a reader mapping %d", n, r.Len())
	}
	if faults(func() { _ = bytes.Count(r.Bytes(), []byte{1}) }) {
		t.Fatal("reader faulted")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = MapFile(openFileT(t, path, false), 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.CloseTruncate(10); err != nil {
		t.Fatal(err)
	}
	if n := fileLenT(t, path); n != 10 {
		t.Fatalf("writer without readers left %d bytes, want 10", n)
	}
}

// TestReadOnlyRefresh: Refresh maps what the writer appended, and FileLen
// is the file's exact length.
func TestReadOnlyRefresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := MapFile(openFileT(t, path, true), 64*PageSize(), &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.FileLen() != 10 || r.Len() != PageSize() || string(r.Bytes()[:10]) != "0123456789" {
		t.Fatalf("FileLen %d Len %d", r.FileLen(), r.Len())
	}
	w, err := MapFile(openFileT(t, path, false), 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.FileLen() != 10 {
		t.Fatalf("writer's FileLen %d, want the length before it extended the file", w.FileLen())
	}
	if err := w.Grow(3*PageSize() + 1); err != nil {
		t.Fatal(err)
	}
	w.Bytes()[3*PageSize()] = 7
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if r.FileLen() != 4*PageSize() || r.Bytes()[3*PageSize()] != 7 {
		t.Fatalf("after Refresh FileLen %d", r.FileLen())
	}
	if err := w.Refresh(); err != nil || w.FileLen() != 10 {
		t.Fatalf("Refresh of a writer: %v, FileLen %d", err, w.FileLen())
	}
}

// TestMapFileRejectsBadFiles: a nil file or one that is not a regular file
// is an error, never a panic or a hang.
func TestMapFileRejectsBadFiles(t *testing.T) {
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				err = errors.New("panicked")
			}
		}()
		_, err = MapFile(nil, PageSize(), nil)
	}()
	if !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("MapFile(nil): %v, want fs.ErrInvalid", err)
	}
	dir, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if _, err := MapFile(dir, PageSize(), &Options{ReadOnly: true}); !errors.Is(err, ErrNotRegular) {
		t.Errorf("MapFile of a directory: %v, want ErrNotRegular", err)
	}
}

// TestRoundUpSaturates: RoundUp near MaxInt gives the largest page multiple
// rather than wrapping negative.
func TestRoundUpSaturates(t *testing.T) {
	top := math.MaxInt &^ (PageSize() - 1)
	for _, n := range []int{math.MaxInt, math.MaxInt - 1, top + 1, top} {
		if got := RoundUp(n); got != top {
			t.Errorf("RoundUp(%d) = %d, want %d", n, got, top)
		}
	}
	if got := RoundUp(top - PageSize() + 1); got != top {
		t.Errorf("RoundUp just under the top = %d", got)
	}
}

// TestErrorText pins the shape of vmem's errors.
func TestErrorText(t *testing.T) {
	_, err := Reserve(-1, &Options{Name: "pool x"})
	if want := `vmem "pool x": reserve -1 bytes: invalid size`; err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// TestCallsDoNotAllocate: the calls a steady state makes (Grow within the
// ready prefix, Sync, Release and Reuse) allocate nothing on success; their
// errors are built only when they fail.
func TestCallsDoNotAllocate(t *testing.T) {
	f := openFileT(t, filepath.Join(t.TempDir(), "f"), false)
	r, err := MapFile(f, 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Grow(4 * PageSize()); err != nil {
		t.Fatal(err)
	}
	a := reserveT(t, 4*PageSize())
	_ = a.Grow(4 * PageSize())
	n := testing.AllocsPerRun(100, func() {
		_ = r.Grow(2 * PageSize())
		_ = r.Sync(10, 100)
		_ = a.Release(0, PageSize())
		_ = a.Reuse(0, PageSize())
	})
	if n != 0 {
		t.Fatalf("%v allocs per run", n)
	}
}

// TestOneRegionPerOpenFile: the locks that keep a writer from cutting the
// file under a reader belong to an open of the file, so a second region of
// one *os.File is ErrInUse (it would otherwise be cut under, and fault)
// and changes nothing; once the first closes, the file maps again.
func TestOneRegionPerOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f := openFileT(t, path, false)
	w, err := MapFile(f, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Grow(8 * PageSize()); err != nil {
		t.Fatal(err)
	}
	for _, o := range []*Options{{ReadOnly: true}, nil} {
		if r, err := MapFile(f, 1<<20, o); !errors.Is(err, ErrInUse) {
			if r != nil {
				_ = r.Close()
			}
			t.Fatalf("second MapFile(%+v) of one *os.File: %v, want ErrInUse", o, err)
		}
	}
	if err := w.Grow(9 * PageSize()); err != nil || fileLenT(t, path) != int64(9*PageSize()) {
		t.Fatalf("writer after refused MapFiles: %v, file of %d bytes", err, fileLenT(t, path))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := MapFile(f, 1<<20, &Options{ReadOnly: true})
	if err != nil {
		t.Fatal("MapFile after the first region closed:", err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
}
