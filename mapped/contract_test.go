package mapped_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

// TestJumpBackLeavesNoOldBytes: after a Jump back, the file must hold zeros
// past the new end, so a crash (here, a copy of the file as the page cache
// holds it, which is what kill -9 leaves) never reopens with the dropped
// bytes as written data.
func TestJumpBackLeavesNoOldBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	m := openT(t, path, &mapped.Options{ExtendSize: 64 << 10})
	defer m.Close()
	if err := m.AppendBytes(bytes.Repeat([]byte{0xAB}, 30000)); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.Jump(1000); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(crashed) < 1000 || !bytes.Equal(crashed[:1000], bytes.Repeat([]byte{0xAB}, 1000)) {
		t.Fatal("kept bytes lost")
	}
	if i := bytes.IndexByte(crashed[1000:], 0xAB); i >= 0 {
		t.Fatalf("dropped byte at %d still in the file after the Jump back", 1000+i)
	}
	copyPath := filepath.Join(t.TempDir(), "crash")
	if err := os.WriteFile(copyPath, crashed, 0o644); err != nil {
		t.Fatal(err)
	}
	re := openT(t, copyPath, nil)
	defer re.Close()
	if tail := re.Bytes(1000, re.Len()-1000); !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Fatal("reopened after a crash with dropped bytes as written data")
	}
}

// TestReserveIsExact: Options.Reserve is the most bytes any memory may
// hold, not rounded up or down to pages.
func TestReserveIsExact(t *testing.T) {
	const reserve = 5000
	each(t, reserve, func(t *testing.T, m mem) {
		for i := range reserve {
			if err := m.AppendUint8(uint8(i)); err != nil {
				t.Fatalf("append %d of %d: %v", i+1, reserve, err)
			}
		}
		if err := m.AppendUint8(1); !errors.Is(err, vmem.ErrExhausted) || m.Len() != reserve {
			t.Fatalf("append past Reserve: %v, Len %d", err, m.Len())
		}
		if err := m.Jump(reserve + 1); !errors.Is(err, vmem.ErrExhausted) {
			t.Fatalf("jump past Reserve: %v", err)
		}
		if m.Uint8(reserve-1) != uint8((reserve-1)&0xFF) {
			t.Fatal("last byte lost")
		}
	})
}

// TestExtendSizeNearMaxInt: a huge ExtendSize means "as much as the
// reservation" and must not overflow its rounding to pages.
func TestExtendSizeNearMaxInt(t *testing.T) {
	for _, x := range []int{math.MaxInt, math.MaxInt - 1, math.MaxInt - vmem.PageSize() + 2} {
		o := &mapped.Options{ExtendSize: x, Reserve: 1 << 20}
		anon, err := mapped.New(o)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []*mapped.Memory{anon, openT(t, filepath.Join(t.TempDir(), "f"), o)} {
			for i := range 1000 {
				if err := m.AppendInt64(int64(i)); err != nil {
					t.Fatalf("ExtendSize %d: append %d: %v", x, i, err)
				}
			}
			if m.Len() != 8000 || m.Int64(7992) != 999 {
				t.Fatalf("ExtendSize %d: Len %d", x, m.Len())
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestValueOver2GiBIsTooLong: a string or binary value whose length does not
// fit the int32 length prefix is ErrTooLong, even when the memory has room
// for it (the fast path of the append), and nothing is written.
func TestValueOver2GiBIsTooLong(t *testing.T) {
	m, err := mapped.New(&mapped.Options{Reserve: 8 << 30, ExtendSize: 4 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.AppendInt8(1); err != nil { // grows by 4 GiB of address space
		t.Fatal(err)
	}
	src, err := mapped.New(&mapped.Options{Reserve: 3 << 30, ExtendSize: 3 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const n = math.MaxInt32 + 1
	if err := src.Jump(n); err != nil {
		t.Fatal(err)
	}
	big := src.Bytes(0, n) // never touched: costs no memory
	if err := m.AppendBin(big); !errors.Is(err, mapped.ErrTooLong) || m.Len() != 1 {
		t.Fatalf("AppendBin of %d bytes: %v, Len %d", n, err, m.Len())
	}
	if err := m.AppendStr(mapped.StringView(big)); !errors.Is(err, mapped.ErrTooLong) || m.Len() != 1 {
		t.Fatalf("AppendStr of %d bytes: %v, Len %d", n, err, m.Len())
	}
}

// TestOpenNonRegularFileFails: a FIFO, a directory or a device is
// vmem.ErrNotRegular, and a read-only open of a FIFO does not wait for a
// writer to appear.
func TestOpenNonRegularFileFails(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip("mkfifo:", err)
	}
	for _, c := range []struct {
		path string
		o    *mapped.Options
	}{{fifo, &mapped.Options{ReadOnly: true}}, {fifo, nil}, {dir, &mapped.Options{ReadOnly: true}}} {
		done := make(chan error, 1)
		go func() {
			m, err := mapped.OpenFile(c.path, c.o)
			if m != nil {
				_ = m.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, vmem.ErrNotRegular) {
				t.Errorf("OpenFile(%s, %+v): %v, want vmem.ErrNotRegular", c.path, c.o, err)
			}
		case <-time.After(10 * time.Second):
			w, _ := os.OpenFile(fifo, os.O_WRONLY, 0) // let the blocked open return
			<-done
			_ = w.Close()
			t.Fatalf("OpenFile(%s, %+v) blocked", c.path, c.o)
		}
	}
}

// TestEmptyAppendOnClosedOrReadOnly: appending zero bytes is still an
// append: ErrClosed after Close, ErrReadOnly on a read-only file.
func TestEmptyAppendOnClosedOrReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	anon, err := mapped.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*mapped.Memory{anon, openT(t, path, nil)} {
		_ = m.AppendInt64(1)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{nil, {}} {
			if err := m.AppendBytes(b); !errors.Is(err, mapped.ErrClosed) {
				t.Errorf("AppendBytes(%v) after Close: %v, want ErrClosed", b, err)
			}
		}
	}
	r := openT(t, path, &mapped.Options{ReadOnly: true})
	defer r.Close()
	if err := r.AppendBytes(nil); !errors.Is(err, mapped.ErrReadOnly) {
		t.Errorf("AppendBytes(nil) on read-only memory: %v, want ErrReadOnly", err)
	}
}

// TestErrorText pins the shape of mapped's errors: the cause's words come
// from vmem, but not its head.
func TestErrorText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, 3*vmem.PageSize()), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := mapped.OpenFile(path, &mapped.Options{Reserve: vmem.PageSize()})
	want := "mapped: open " + path + ": 12288 bytes into 4096 reserved: reservation exhausted"
	if vmem.PageSize() != 4096 {
		t.Skip("the pinned text assumes 4 KiB pages")
	}
	if err == nil || err.Error() != want || !errors.Is(err, vmem.ErrExhausted) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// TestJumpAndSyncDoNotAllocate: Jump, Skip and SyncRange build their errors
// only when they fail, so a steady state of them allocates nothing.
func TestJumpAndSyncDoNotAllocate(t *testing.T) {
	if check.On {
		t.Skip("the checked build verifies invariants, with their messages' arguments, on every Jump")
	}
	anon, err := mapped.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	file := openT(t, filepath.Join(t.TempDir(), "f"), nil)
	defer file.Close()
	for _, m := range []*mapped.Memory{anon, file} {
		_ = m.AppendBytes(make([]byte, 100))
		n := testing.AllocsPerRun(100, func() {
			_ = m.Jump(10)
			_ = m.Skip(90)
			_ = m.SyncRange(0, 10)
		})
		if n != 0 {
			t.Fatalf("%v allocs per run", n)
		}
	}
}
