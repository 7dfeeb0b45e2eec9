package mapped_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

func openT(t *testing.T, path string, o *mapped.Options) *mapped.Memory {
	t.Helper()
	m, err := mapped.OpenFile(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFileReopenReadsBackAndCloseTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "col")
	m := openT(t, path, &mapped.Options{ExtendSize: 64 << 10})
	for i := range 1000 {
		_ = m.AppendInt64(int64(i))
		_ = m.AppendStr("row")
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(path)
	if st.Size() < int64(m.Len()) || st.Size()%int64(vmem.PageSize()) != 0 {
		t.Fatalf("file of %d bytes for %d written: not extended by steps", st.Size(), m.Len())
	}
	n := m.Len()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() != int64(n) {
		t.Fatalf("Close left %d bytes, want %d", st.Size(), n)
	}
	m = openT(t, path, nil)
	defer m.Close()
	if m.Len() != n {
		t.Fatalf("reopened Len %d want %d", m.Len(), n)
	}
	for i := range 1000 {
		off := i * 15
		if m.Int64(off) != int64(i) {
			t.Fatalf("row %d reads %d", i, m.Int64(off))
		}
		if s, ok := m.Str(off + 8); !ok || s != "row" {
			t.Fatalf("row %d string %q", i, s)
		}
	}
	if err := m.AppendInt8(1); err != nil || m.Len() != n+1 {
		t.Fatal("append after reopen")
	}
}

func TestReadOnlyFollowsWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "col")
	w := openT(t, path, &mapped.Options{ExtendSize: 4096})
	defer w.Close()
	_ = w.AppendInt64(1)
	r := openT(t, path, &mapped.Options{ReadOnly: true})
	defer r.Close()
	if !r.ReadOnly() || r.Int64(0) != 1 {
		t.Fatal("reader does not see the first value")
	}
	before := r.Len()
	if err := r.AppendInt64(2); !errors.Is(err, mapped.ErrReadOnly) {
		t.Fatalf("append to read-only: %v", err)
	}
	if err := r.Jump(0); !errors.Is(err, mapped.ErrReadOnly) {
		t.Fatalf("jump on read-only: %v", err)
	}
	if p, re := panics(func() { r.PutInt64(0, 9) }); !p || !re {
		t.Fatal("put on read-only memory did not panic with a RangeError")
	}
	if r.Len() != before || r.Int64(0) != 1 {
		t.Fatal("failed writes changed the reader")
	}
	view := r.Bytes(0, 8)
	for i := range 10000 {
		_ = w.AppendInt64(int64(i))
	}
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if r.Len() < w.Len() || r.Int64(8*10000) != 9999 {
		t.Fatalf("after Refresh reader Len %d writer %d", r.Len(), w.Len())
	}
	if &view[0] != &r.Bytes(0, 8)[0] {
		t.Fatal("Refresh moved the mapping")
	}
	if err := w.Refresh(); err != nil {
		t.Fatal("Refresh on a writer should do nothing:", err)
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := mapped.OpenFile(filepath.Join(dir, "missing"), &mapped.Options{ReadOnly: true}); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of a missing file: %v", err)
	}
	if _, err := mapped.OpenFile(filepath.Join(dir, "no", "such", "dir"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("open in a missing dir: %v", err)
	}
	if _, err := mapped.OpenFile(filepath.Join(dir, "x"), &mapped.Options{Reserve: -1}); !errors.Is(err, mapped.ErrOptions) {
		t.Fatalf("negative reserve: %v", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 3*vmem.PageSize()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := mapped.OpenFile(big, &mapped.Options{Reserve: vmem.PageSize()}); !errors.Is(err, vmem.ErrExhausted) {
		t.Fatalf("file bigger than the reservation: %v", err)
	}
	m := openT(t, filepath.Join(dir, "s"), nil)
	defer m.Close()
	_ = m.AppendInt32(1)
	if err := m.SyncRange(2, 8); !errors.Is(err, mapped.ErrOffset) {
		t.Fatalf("SyncRange past the end: %v", err)
	}
	if err := m.SyncRange(0, 4); err != nil {
		t.Fatal(err)
	}
}

// TestLeakReported: in the checked build, memory garbage collected without
// Close is reported with the bytes it held.
func TestLeakReported(t *testing.T) {
	if !check.On {
		t.Skip("leak reports are part of the checked build (-tags offheapcheck)")
	}
	got := make(chan int, 4)
	restore := mapped.SetLeakReport(func(what string, n int) { got <- n })
	defer restore()
	func() {
		m, _ := mapped.New(nil)
		_ = m.AppendInt64(1)
	}()
	deadline := time.Now().Add(5 * time.Second)
	seen := 0
	for seen < 1 && time.Now().Before(deadline) {
		runtime.GC()
		select {
		case n := <-got:
			if n <= 0 {
				t.Fatalf("leak reported with %d bytes", n)
			}
			seen++
		case <-time.After(10 * time.Millisecond):
		}
	}
	if seen < 1 {
		t.Fatal("leak not reported")
	}
}
