package column_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/column"
	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

func openFixed[T mapped.Number](t *testing.T, path string, o *column.Options) *column.Fixed[T] {
	t.Helper()
	c, err := column.OpenFixed[T](path, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openVar(t *testing.T, path string, o *column.Options) *column.Var {
	t.Helper()
	c, err := column.OpenVar(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type price float64

func TestFixedRoundTripAndReopen(t *testing.T) {
	dir := t.TempDir()
	testFixed(t, filepath.Join(dir, "i8"), func(i int) int8 { return int8(i) })
	testFixed(t, filepath.Join(dir, "u16"), func(i int) uint16 { return uint16(i * 7) })
	testFixed(t, filepath.Join(dir, "i64"), func(i int) int64 { return int64(i) * -1e9 })
	testFixed(t, filepath.Join(dir, "f32"), func(i int) float32 { return float32(i) / 3 })
	testFixed(t, filepath.Join(dir, "price"), func(i int) price { return price(i) + 0.25 })
	testFixed(t, filepath.Join(dir, "c128"), func(i int) complex128 { return complex(float64(i), -1) })
}

func testFixed[T mapped.Number](t *testing.T, path string, f func(int) T) {
	t.Helper()
	const n = 5000
	c := openFixed[T](t, path, &column.Options{ExtendSize: 4096})
	for i := range n {
		if err := c.Append(f(i)); err != nil {
			t.Fatal(err)
		}
	}
	vals := c.Values()
	if c.Rows() != n || len(vals) != n || vals[n-1] != f(n-1) || c.Get(1234) != f(1234) {
		t.Fatalf("%s: rows %d, values %d", path, c.Rows(), len(vals))
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openFixed[T](t, path, nil)
	defer c.Close()
	if c.Rows() != n || c.Committed() != n {
		t.Fatalf("%s reopened with %d rows (%d committed)", path, c.Rows(), c.Committed())
	}
	for i, v := range c.Values() {
		if v != f(i) {
			t.Fatalf("%s row %d: %v want %v", path, i, v, f(i))
		}
	}
}

func TestVarRoundTripAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v")
	c := openVar(t, path, &column.Options{ExtendSize: 4096})
	want := func(i int) (string, bool) {
		if i%5 == 0 {
			return "", false
		}
		return string(bytes.Repeat([]byte{'a' + byte(i%26)}, i%13)), true
	}
	const n = 3000
	for i := range n {
		s, ok := want(i)
		var err error
		switch {
		case !ok && i%2 == 0:
			err = c.AppendNull()
		case !ok:
			err = c.AppendBin(nil)
		case i%3 == 0:
			err = c.AppendBin([]byte(s))
		default:
			err = c.AppendStr(s)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	check := func(c *column.Var) {
		t.Helper()
		if c.Rows() != n {
			t.Fatalf("rows %d", c.Rows())
		}
		for i := range n {
			s, ok := want(i)
			got, gotOK := c.Str(i)
			if got != s || gotOK != ok {
				t.Fatalf("row %d: %q %v want %q %v", i, got, gotOK, s, ok)
			}
			if b := c.Bin(i); (b == nil) == ok || string(b) != s {
				t.Fatalf("row %d as binary: %v", i, b)
			}
		}
	}
	check(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openVar(t, path, nil)
	defer c.Close()
	check(c)
}

// crashCopy copies the files of an open column as a crash would leave them
// (the page cache, so including rows never synced) into a new directory.
func crashCopy(t testing.TB, paths ...string) string {
	t.Helper()
	dir := memDir(t)
	for _, p := range paths {
		src, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(dir, filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		_ = src.Close()
		_ = dst.Close()
	}
	return dir
}

func TestUnsyncedRowsDroppedOnReopen(t *testing.T) {
	dir := t.TempDir()
	f := openFixed[int64](t, filepath.Join(dir, "f"), nil)
	defer f.Close()
	v := openVar(t, filepath.Join(dir, "v"), nil)
	defer v.Close()
	for i := range 100 {
		_ = f.Append(int64(i))
		_ = v.AppendStr("synced")
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := v.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		_ = f.Append(int64(-i))
		_ = v.AppendStr("lost")
	}
	crash := crashCopy(t, filepath.Join(dir, "f"), filepath.Join(dir, "v"), filepath.Join(dir, "v"+column.DataSuffix))
	f2 := openFixed[int64](t, filepath.Join(crash, "f"), nil)
	defer f2.Close()
	v2 := openVar(t, filepath.Join(crash, "v"), nil)
	defer v2.Close()
	if f2.Rows() != 100 || v2.Rows() != 100 || f2.Get(99) != 99 {
		t.Fatalf("after crash: %d fixed rows, %d var rows, want the 100 synced", f2.Rows(), v2.Rows())
	}
	if s, _ := v2.Str(99); s != "synced" {
		t.Fatalf("last var row %q", s)
	}
	if err := v2.AppendStr("after"); err != nil || v2.Rows() != 101 {
		t.Fatal("append after crash reopen")
	}
	if s, _ := v2.Str(100); s != "after" {
		t.Fatalf("appended after reopen: %q", s)
	}
}

// header slot offsets, as column.go lays them out.
const slot0, slot1 = 0, 512

func TestTornHeaderSlotFallsBackToTheOther(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	c := openFixed[int32](t, path, nil)
	for i := range 10 {
		_ = c.Append(int32(i))
	}
	_ = c.Sync() // commit 2: 10 rows, into slot 0
	for i := range 10 {
		_ = c.Append(int32(i + 10))
	}
	_ = c.Close() // commit 3: 20 rows, into slot 1
	b, _ := os.ReadFile(path)
	b[slot1+20] ^= 0xff // tear the newest slot
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	c = openFixed[int32](t, path, nil)
	if c.Rows() != 10 || c.Get(9) != 9 {
		t.Fatalf("torn newest slot: %d rows, want the older slot's 10", c.Rows())
	}
	_ = c.Close()
}

func TestBadFilesRejectedAndUnchanged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	c := openFixed[int64](t, path, nil)
	_ = c.Append(42)
	_ = c.Close()
	good, _ := os.ReadFile(path)

	for name, open := range map[string]func() error{
		"as float64": func() error { _, err := column.OpenFixed[float64](path, nil); return err },
		"as int32":   func() error { _, err := column.OpenFixed[int32](path, nil); return err },
		"as var":     func() error { _, err := column.OpenVar(path, nil); return err },
	} {
		if err := open(); !errors.Is(err, column.ErrMismatch) {
			t.Errorf("%s: %v, want ErrMismatch", name, err)
		}
		if b, _ := os.ReadFile(path); !bytes.Equal(b, good) {
			t.Fatalf("%s changed the file", name)
		}
		if _, err := os.Stat(path + column.DataSuffix); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s left a data file behind: %v", name, err)
		}
	}

	corrupt := func(name string, f func(b []byte) []byte) {
		p := filepath.Join(dir, name)
		bad := f(bytes.Clone(good))
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := column.OpenFixed[int64](p, nil); !errors.Is(err, column.ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", name, err)
		}
		if b, _ := os.ReadFile(p); !bytes.Equal(b, bad) {
			t.Fatalf("%s: failed open changed the file", name)
		}
	}
	corrupt("both slots torn", func(b []byte) []byte { b[slot0+9] ^= 1; b[slot1+9] ^= 1; return b })
	corrupt("short", func(b []byte) []byte { return b[:100] })
	corrupt("rows cut off", func(b []byte) []byte { return b[:column.HeaderSize+4] })
}

func TestExhaustedAppendChangesNothing(t *testing.T) {
	dir := t.TempDir()
	o := &column.Options{Reserve: 8192, ExtendSize: 4096}
	f := openFixed[int64](t, filepath.Join(dir, "f"), o)
	defer f.Close()
	for f.Append(1) == nil {
	}
	if err := f.Append(2); !errors.Is(err, vmem.ErrExhausted) || f.Rows() != 512 {
		t.Fatalf("full fixed column: %v with %d rows", err, f.Rows())
	}
	// The index (8 bytes a row) fills first: the value already appended to
	// the data file is undone, so the data file ends with the last row.
	testVarFull(t, filepath.Join(dir, "v"), o, "0123456789", 512)
	// The data file (104 bytes a row) fills first.
	testVarFull(t, filepath.Join(dir, "w"), o, string(make([]byte, 100)), 8192/104)
}

func testVarFull(t *testing.T, path string, o *column.Options, val string, rows int) {
	t.Helper()
	v := openVar(t, path, o)
	for v.AppendStr(val) == nil {
	}
	if err := v.AppendStr(val); !errors.Is(err, vmem.ErrExhausted) || v.Rows() != rows {
		t.Fatalf("full var column: %v with %d rows, want %d", err, v.Rows(), rows)
	}
	if s, _ := v.Str(rows - 1); s != val {
		t.Fatal("failed append changed the last row")
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path + column.DataSuffix); err != nil || st.Size() != int64(rows*(4+len(val))) {
		t.Fatalf("data file of %v bytes after failed appends, want %d", st.Size(), rows*(4+len(val)))
	}
	v = openVar(t, path, o)
	defer v.Close()
	if s, _ := v.Str(rows - 1); v.Rows() != rows || s != val {
		t.Fatalf("reopened full column has %d rows, want %d", v.Rows(), rows)
	}
}

func TestRowOutOfRangeAndClosed(t *testing.T) {
	dir := t.TempDir()
	f := openFixed[int16](t, filepath.Join(dir, "f"), nil)
	v := openVar(t, filepath.Join(dir, "v"), nil)
	_ = f.Append(1)
	_ = v.AppendStr("x")
	for name, fn := range map[string]func(){
		"fixed past end": func() { f.Get(1) },
		"fixed negative": func() { f.Get(-1) },
		"var past end":   func() { v.Str(1) },
		"var negative":   func() { v.Bin(-1) },
	} {
		func() {
			defer func() {
				if _, ok := recover().(column.RowError); !ok {
					t.Errorf("%s did not panic with a RowError", name)
				}
			}()
			fn()
		}()
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"fixed append": f.Append(1), "fixed sync": f.Sync(), "fixed close": f.Close(),
		"var append": v.AppendStr("y"), "var sync": v.Sync(), "var close": v.Close(),
	} {
		if !errors.Is(err, mapped.ErrClosed) {
			t.Errorf("%s after Close: %v", name, err)
		}
	}
}

func TestAppendAndReadDoNotAllocate(t *testing.T) {
	dir := t.TempDir()
	f := openFixed[float64](t, filepath.Join(dir, "f"), nil)
	defer f.Close()
	v := openVar(t, filepath.Join(dir, "v"), nil)
	defer v.Close()
	_ = f.Append(1)
	_ = v.AppendStr("warm")
	n := testing.AllocsPerRun(1000, func() {
		_ = f.Append(2.5)
		_ = v.AppendStr("row")
		_ = f.Get(0)
		_, _ = v.Str(0)
		_ = f.Values()
	})
	if n != 0 {
		t.Fatalf("%v allocs per append and read", n)
	}
}

// memDir returns a directory in memory (/dev/shm) where there is one, else
// t.TempDir(), removed after the test, for the fuzz test's columns and
// crash copies. Their checks do not depend on the disk, and creating files
// on a disk file system that has just deleted many (ext4 skips recently
// deleted inodes, scanning for others) slowed FuzzColumn in CI to under one
// input a second, near its timeout.
func memDir(t testing.TB) string {
	dir, err := os.MkdirTemp("/dev/shm", "offheap-column-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}
