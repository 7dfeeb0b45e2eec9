package vmem

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/offheap/offheap/internal/testfs"
)

// Growth where the file system has no fallocate (Linux, where the fallocate
// call can be made to fail as it does there).

// allocated returns how many bytes of the file at path have blocks.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestGrowWithoutFallocateAllocatesBlocks takes the path of a file system
// without fallocate (by making fallocate fail as there) on any file system:
// the grown file must have its blocks, not be sparse.
func TestGrowWithoutFallocateAllocatesBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	f := openFileT(t, path, false)
	injected(t, &fallocate, func(*os.File, int64, int64) error { return syscall.EOPNOTSUPP })
	r, err := MapFile(f, 64*mib, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Grow(4 * mib); err != nil {
		t.Fatal(err)
	}
	if n := allocated(t, path); n < 4*mib {
		t.Fatalf("grown file has %d bytes allocated of %d: sparse", n, 4*mib)
	}
	fill(r.Bytes(), 1)
}

// fillUntilFull grows a file region on a small file system by step bytes at
// a time, writing every new byte, until Grow fails. A store into a page the
// file system could not allocate would fault (SIGBUS), which the test turns
// into a failure rather than a crash.
func fillUntilFull(t *testing.T, dir string, step int) {
	t.Helper()
	f := openFileT(t, filepath.Join(dir, "f"), false)
	r, err := MapFile(f, 64*mib, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for {
		old := r.Len()
		err := r.Grow(old + step)
		if err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Grow on a full file system: %v, want ENOSPC", err)
			}
			if r.Len() != old {
				t.Fatal("failed Grow changed the region")
			}
			return
		}
		if faults(func() { fill(r.Bytes()[old:], 3) }) {
			t.Fatalf("store into [%d, %d), grown without error, faulted: the file system had no room", old, r.Len())
		}
		if old > 64*mib-step {
			t.Fatal("the file system never filled")
		}
	}
}

// TestFullDiskWithoutFallocateIsENOSPC fills a small ext2 file system (no
// fallocate): growth must fail with ENOSPC, never leave a hole that faults.
func TestFullDiskWithoutFallocateIsENOSPC(t *testing.T) {
	fillUntilFull(t, testfs.Ext2(t, 2*mib), 64<<10)
}

// TestFullTmpfsWithoutFallocateIsENOSPC fills a small tmpfs the way a file
// system without fallocate is filled (fallocate made to fail).
func TestFullTmpfsWithoutFallocateIsENOSPC(t *testing.T) {
	dir := testfs.Tmpfs(t, 1*mib)
	injected(t, &fallocate, func(*os.File, int64, int64) error { return syscall.EOPNOTSUPP })
	fillUntilFull(t, dir, 64<<10)
}

// TestSparseFileAllocatedAtMap: a sparse file that offheap did not make
// has its holes allocated by a writable MapFile, so a full disk is ENOSPC
// from MapFile, with the file as it was, and never SIGBUS at a load or
// store into a hole (on tmpfs even a load takes a page).
func TestSparseFileAllocatedAtMap(t *testing.T) {
	dir := testfs.Tmpfs(t, 4*mib)
	sparse := func(name string, size int64) (string, *os.File) {
		path := filepath.Join(dir, name)
		f := openFileT(t, path, false)
		if _, err := f.WriteAt([]byte("head"), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("tail"), size-4); err != nil {
			t.Fatal(err)
		}
		return path, f
	}
	path, f := sparse("fits", 2*mib)
	r, err := MapFile(f, 64*mib, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := allocated(t, path); n < 2*mib {
		t.Fatalf("mapped sparse file has %d of %d bytes allocated", n, 2*mib)
	}
	if faults(func() { fill(r.Bytes()[4:2*mib-4], 5) }) {
		t.Fatal("store into a hole faulted")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	path, f = sparse("too big", 16*mib)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err = MapFile(f, 64*mib, nil)
	if err == nil {
		faulted := faults(func() { fill(r.Bytes(), 6) })
		_ = r.Close()
		t.Fatalf("a 16 MiB sparse file on a 4 MiB file system mapped (stores faulted: %v), want ENOSPC", faulted)
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("MapFile of a sparse file larger than the disk: %v, want ENOSPC", err)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("a failed MapFile changed the file (%v)", err)
	}
	if pos, err := f.Seek(0, io.SeekCurrent); err != nil || pos != 0 {
		t.Fatalf("MapFile moved the file offset to %d (%v)", pos, err)
	}
}
