package arrowalloc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/offheap/offheap/arena"
	"github.com/offheap/offheap/vmem"
)

func newChecked(t testing.TB, opts *CheckedOptions) *Checked {
	t.Helper()
	c, err := NewChecked(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// closeChecked checks that no Free was bad and no buffer is live, and closes c.
func closeChecked(t testing.TB, c *Checked) {
	t.Helper()
	if err := c.Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// sink keeps the tests' reads of stale memory from being optimised away.
var sink byte

// fault runs f under c.Run and returns the *BufferError it must report.
func fault(t *testing.T, c *Checked, f func()) *BufferError {
	t.Helper()
	err := c.Run(f)
	var e *BufferError
	if !errors.As(err, &e) {
		t.Fatalf("Run returned %v, want a *BufferError", err)
	}
	return e
}

// has reports whether s has a frame of a function whose name ends with fn.
func has(s Stack, fn string) bool {
	frames := runtime.CallersFrames(s)
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, fn) {
			return true
		}
		if !more {
			return false
		}
	}
}

// wantSites checks the stacks of e: each of at, alloc and release must be a
// frame of the stack of that name ("" wants the stack empty).
func wantSites(t *testing.T, e *BufferError, at, alloc, release string) {
	t.Helper()
	for _, s := range []struct {
		name, fn string
		st       Stack
	}{{"misuse", at, e.At}, {"allocation", alloc, e.Allocated}, {"release", release, e.Released}} {
		if s.fn == "" && s.st != nil || s.fn != "" && !has(s.st, s.fn) {
			t.Errorf("%s stack does not show %q:\n%v", s.name, s.fn, e)
		}
	}
}

// stringsOf builds a string array on mem.
func stringsOf(mem memory.Allocator, vals ...string) *array.String {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.AppendValues(vals, nil)
	return b.NewStringArray()
}

// valueAfterRelease keeps a value of a string array past the array's release,
// a bug: String.Value returns a string over the array's buffer, not a copy.
func valueAfterRelease(mem memory.Allocator) string {
	arr := stringsOf(mem, "alpha", "beta", "gamma")
	s := arr.Value(1)
	arr.Release()
	return s
}

// TestUseAfterRelease reads Arrow buffers after their release in the ways
// Arrow code does (a zero-copy string, a typed slice, Buffer.Bytes, a slice
// kept across a Reallocate), and checks each read is reported with the
// buffer's allocation and release sites, where Go's allocator hides it.
func TestUseAfterRelease(t *testing.T) {
	if s := valueAfterRelease(memory.NewGoAllocator()); s != "beta" {
		t.Fatalf("on Go's heap the stale string is %q", s)
	}
	t.Run("String.Value", func(t *testing.T) {
		c := newChecked(t, nil)
		s := valueAfterRelease(c)
		e := fault(t, c, func() { _ = strings.Clone(s) })
		if !errors.Is(e, ErrUseAfterRelease) || e.Offset != 5 || e.Reallocated {
			t.Fatalf("got %v", e)
		}
		wantSites(t, e, "TestUseAfterRelease.func1.1", "memory.(*Buffer).Reserve", "valueAfterRelease")
		t.Logf("the report:\n%v", e)
		closeChecked(t, c)
	})
	t.Run("Int64Values", func(t *testing.T) {
		c := newChecked(t, nil)
		b := array.NewInt64Builder(c)
		b.AppendValues([]int64{1, 2, 3, 4}, nil)
		arr := b.NewInt64Array()
		b.Release()
		vals := arr.Int64Values()
		arr.Release()
		var sum int64
		e := fault(t, c, func() {
			for _, v := range vals {
				sum += v
			}
		})
		if !errors.Is(e, ErrUseAfterRelease) || e.Offset != 0 {
			t.Fatalf("got %v", e)
		}
		wantSites(t, e, "TestUseAfterRelease.func2.1", "array.(*Int64Builder).NewInt64Array", "array.(*array).Release")
		closeChecked(t, c)
	})
	t.Run("Buffer.Bytes", func(t *testing.T) {
		c := newChecked(t, nil)
		buf := memory.NewResizableBuffer(c)
		buf.Resize(100)
		bs := buf.Bytes()
		buf.Release()
		e := fault(t, c, func() { bs[99] = 1 })
		if !errors.Is(e, ErrUseAfterRelease) || e.Offset != 99 || e.Size != 128 {
			t.Fatalf("got %v", e)
		}
		wantSites(t, e, "TestUseAfterRelease.func3.1", "TestUseAfterRelease.func3", "memory.(*Buffer).Release")
		closeChecked(t, c)
	})
	t.Run("Reallocate", func(t *testing.T) {
		c := newChecked(t, nil)
		buf := memory.NewResizableBuffer(c)
		buf.Resize(64)
		old := buf.Bytes()
		buf.Resize(1 << 16) // moves the buffer
		e := fault(t, c, func() { sink = old[10] })
		if !errors.Is(e, ErrUseAfterRelease) || !e.Reallocated {
			t.Fatalf("got %v", e)
		}
		wantSites(t, e, "TestUseAfterRelease.func4.1", "TestUseAfterRelease.func4", "memory.(*Buffer).Reserve")
		buf.Release()
		closeChecked(t, c)
	})
}

// jsonWriter keeps a record batch's string columns between Write and Close
// as arrow/internal/arrjson's Writer does: as the zero-copy views
// String.Value and String.ValueOffsets return, encoded only at Close. A
// caller that releases the batch after Write, as Arrow's own tests do, makes
// Close read released buffers.
type jsonWriter struct {
	w    io.Writer
	recs [][]jsonColumn
}

type jsonColumn struct {
	Name   string   `json:"name"`
	Count  int      `json:"count"`
	Data   []string `json:"DATA"`
	Offset []int32  `json:"OFFSET"`
}

func (w *jsonWriter) Write(rec arrow.RecordBatch) {
	var cols []jsonColumn
	for i, col := range rec.Columns() {
		s := col.(*array.String)
		data := make([]string, s.Len())
		for j := range data {
			data[j] = s.Value(j)
		}
		cols = append(cols, jsonColumn{rec.ColumnName(i), s.Len(), data, s.ValueOffsets()})
	}
	w.recs = append(w.recs, cols)
}

func (w *jsonWriter) Close() error { return json.NewEncoder(w.w).Encode(w.recs) }

// writeReleased writes a batch of one string column to w and releases it, as
// the callers of arrjson's Writer do before its Close.
func writeReleased(w *jsonWriter, mem memory.Allocator) {
	col := stringsOf(mem, "x", "yy", "zzz")
	defer col.Release()
	schema := arrow.NewSchema([]arrow.Field{{Name: "s", Type: arrow.BinaryTypes.String}}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, int64(col.Len()))
	defer rec.Release()
	w.Write(rec)
}

// TestArrjsonPattern reproduces the use after release in arrjson's Writer:
// on Go's allocator the JSON comes out right, under Checked its Close is
// reported, inside encoding/json, with the buffer's sites.
func TestArrjsonPattern(t *testing.T) {
	var out strings.Builder
	w := &jsonWriter{w: &out}
	writeReleased(w, memory.NewGoAllocator())
	if err := w.Close(); err != nil || !strings.Contains(out.String(), `"DATA":["x","yy","zzz"],"OFFSET":[0,1,3,6]`) {
		t.Fatalf("on Go's heap: %v, %s", err, out.String())
	}

	c := newChecked(t, nil)
	w = &jsonWriter{w: io.Discard}
	writeReleased(w, c)
	e := fault(t, c, func() { _ = w.Close() })
	if !errors.Is(e, ErrUseAfterRelease) {
		t.Fatalf("got %v", e)
	}
	wantSites(t, e, "(*jsonWriter).Close", "writeReleased", "writeReleased")
	if !has(e.At, "json.(*encodeState).marshal") {
		t.Errorf("the fault is not in encoding/json:\n%v", e)
	}
	t.Logf("the report:\n%v", e)
	closeChecked(t, c)
}

// TestOverrun reads past a buffer's padding and past an empty buffer's end.
func TestOverrun(t *testing.T) {
	c := newChecked(t, nil)
	b := c.Allocate(100)
	if got := peek(b, roundUp(100)-1); got != 0 {
		t.Fatalf("padding byte is %d", got)
	}
	e := fault(t, c, func() { sink = peek(b, 128) })
	if !errors.Is(e, ErrOverrun) || e.Size != 100 || e.Offset != 128 {
		t.Fatalf("got %v", e)
	}
	wantSites(t, e, "TestOverrun.func1", "TestOverrun", "")
	c.Free(b)

	z := c.Allocate(0)
	e = fault(t, c, func() { sink = peek(z, 3) })
	if !errors.Is(e, ErrOverrun) || e.Size != 0 || e.Offset != 3 {
		t.Fatalf("got %v", e)
	}
	c.Free(z) // ignored, as an empty buffer holds nothing
	z = c.Reallocate(10, z)
	if len(z) != 10 {
		t.Fatalf("Reallocate(10) of an empty buffer: %d bytes", len(z))
	}
	c.Free(z)
	closeChecked(t, c)
}

func freeFirst(c *Checked, b []byte) { c.Free(b) }
func freeAgain(c *Checked, b []byte) { c.Free(b) }

// TestDoubleFree checks a double free, a Reallocate of a released buffer and
// two foreign frees are reported with their sites and change nothing.
func TestDoubleFree(t *testing.T) {
	c := newChecked(t, nil)
	b := c.Allocate(100)
	keep := c.Allocate(50)
	for i := range keep {
		keep[i] = byte(i)
	}
	freeFirst(c, b)
	freeAgain(c, b)
	err := c.Err()
	var e *BufferError
	if !errors.Is(err, arena.ErrDoubleFree) || !errors.As(err, &e) || e.Op != "free" || e.Size != 100 {
		t.Fatalf("Err after a double free: %v", err)
	}
	wantSites(t, e, "freeAgain", "TestDoubleFree", "freeFirst")
	t.Logf("the report:\n%v", err)

	nb := c.Reallocate(200, b)
	if len(nb) != 200 || nb[0] != 0 {
		t.Fatalf("Reallocate of a released buffer: %d bytes", len(nb))
	}
	c.Free(make([]byte, 64)) // not ours
	c.Free(keep[32:])        // inside a live buffer
	if err := c.Err(); !strings.HasPrefix(err.Error(), "4 bad frees, the first: ") {
		t.Fatalf("Err after 4 bad frees: %v", err)
	}
	if c.CurrentAlloc() != 250 {
		t.Fatalf("bad frees changed the books: %d bytes live", c.CurrentAlloc())
	}
	for i := range keep {
		if keep[i] != byte(i) {
			t.Fatalf("byte %d of a live buffer changed", i)
		}
	}
	if e := fault(t, c, func() { sink = b[0] }); !errors.Is(e, ErrUseAfterRelease) {
		t.Fatalf("the twice-freed buffer: %v", e)
	}
	c.Free(nb)
	c.Free(keep)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// recorder is a memory.TestingT that keeps what AssertSize reports.
type recorder struct{ msgs []string }

func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}
func (r *recorder) Helper() {}

// leakyBuild builds an array it never releases.
func leakyBuild(mem memory.Allocator) *array.Int64 {
	b := array.NewInt64Builder(mem)
	b.AppendValues([]int64{1, 2, 3}, nil)
	arr := b.NewInt64Array()
	b.Release()
	return arr
}

// TestLeaks checks AssertSize and Close report a live buffer with its
// allocation site, and that Close then leaves the allocator usable.
func TestLeaks(t *testing.T) {
	c := newChecked(t, nil)
	arr := leakyBuild(c)
	var r recorder
	c.AssertSize(&r, 0)
	if len(r.msgs) != 1 || !strings.Contains(r.msgs[0], "allocated at:") || !strings.Contains(r.msgs[0], "leakyBuild") {
		t.Fatalf("AssertSize reported %q", r.msgs)
	}
	err := c.Close()
	if !errors.Is(err, arena.ErrLeaked) || !strings.Contains(err.Error(), "leakyBuild") {
		t.Fatalf("Close with a live buffer: %v", err)
	}
	t.Logf("the report:\n%v", err)
	vals := arr.Int64Values()
	if vals[2] != 3 {
		t.Fatal("a failed Close changed a live buffer")
	}
	arr.Release()
	r = recorder{}
	if c.AssertSize(&r, 0); len(r.msgs) != 0 {
		t.Fatalf("AssertSize after the release: %q", r.msgs)
	}
	closeChecked(t, c)
	if err := c.Close(); !errors.Is(err, arena.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if e := fault(t, c, func() { sink = byte(vals[0]) }); !errors.Is(e, ErrUseAfterRelease) {
		t.Fatalf("a read after Close: %v", e)
	}
	func() {
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, arena.ErrClosed) {
				t.Fatalf("Allocate after Close panicked with %v", err)
			}
		}()
		c.Allocate(10)
	}()
}

// TestRunPassesOtherPanics checks Run leaves every panic that is not a fault
// on its allocator's memory alone, and restores the goroutine's fault mode.
func TestRunPassesOtherPanics(t *testing.T) {
	c, other := newChecked(t, nil), newChecked(t, nil)
	repanic := func(f func()) (r any) {
		defer func() { r = recover() }()
		if err := c.Run(f); err != nil {
			t.Fatalf("Run returned %v", err)
		}
		return nil
	}
	if r := repanic(func() { panic("boom") }); r != "boom" {
		t.Fatalf("a plain panic came back as %v", r)
	}
	var p *int
	if r := repanic(func() { _ = *p }); r == nil || c.Diagnose(r) != nil {
		t.Fatalf("a nil dereference came back as %v", r)
	}
	b := other.Allocate(64)
	other.Free(b)
	r := repanic(func() { sink = b[0] })
	if e := other.Diagnose(r); !errors.Is(e, ErrUseAfterRelease) {
		t.Fatalf("a fault on another allocator's buffer came back as %v (%v)", r, e)
	}
	if debug.SetPanicOnFault(false) {
		t.Fatal("Run left the goroutine panicking on faults")
	}
	if err := c.Run(func() {}); err != nil {
		t.Fatal(err)
	}
	closeChecked(t, c)
	closeChecked(t, other)
}

// TestQuarantine checks on a small reservation that a released run is handed
// out again only after the ring has gone round, that live buffers survive
// the wrap, and that a full ring and an oversize request panic with typed
// errors and leave the allocator usable.
func TestQuarantine(t *testing.T) {
	page := vmem.PageSize()
	c := newChecked(t, &CheckedOptions{Reserve: 16 * page}) // page 0, then 7 runs of 2 pages
	a := c.Allocate(64)
	first := addr(a)
	c.Free(a)
	keep := c.Allocate(64)
	keep[0] = 42
	var seen []uintptr
	for range 5 {
		b := c.Allocate(64)
		seen = append(seen, addr(b))
		c.Free(b)
	}
	for _, p := range seen {
		if p == first {
			t.Fatalf("a released run came back before the ring went round: %#x in %#x", first, seen)
		}
	}
	if b := c.Allocate(64); addr(b) != first {
		t.Fatalf("after the wrap the first free run is %#x, want %#x", addr(b), first)
	} else {
		c.Free(b)
	}
	if keep[0] != 42 {
		t.Fatal("a live buffer changed across the wrap")
	}
	mustPanic := func(size int, want error) {
		t.Helper()
		defer func() {
			if err, _ := recover().(error); !errors.Is(err, want) {
				t.Fatalf("Allocate(%d) panicked with %v, want %v", size, err, want)
			}
		}()
		c.Allocate(size)
	}
	var full [][]byte
	for range 6 {
		full = append(full, c.Allocate(1))
	}
	mustPanic(1, arena.ErrExhausted)
	mustPanic(16*page, arena.ErrTooLarge)
	for _, b := range full {
		c.Free(b)
	}
	c.Free(keep)
	if b := c.Allocate(13 * page); len(b) != 13*page {
		t.Fatal("the largest buffer does not fit an empty ring")
	} else {
		c.Free(b)
	}
	closeChecked(t, c)
}

func TestNewCheckedOptions(t *testing.T) {
	for _, n := range []int{-1, 1, MaxCheckedReserve + 1} {
		if _, err := NewChecked(&CheckedOptions{Reserve: n}); !errors.Is(err, arena.ErrInvalidSize) {
			t.Errorf("Reserve %d: %v", n, err)
		}
	}
}

// TestConcurrentFaults has goroutines read their released buffers under Run
// while others allocate and free on the same allocator.
func TestConcurrentFaults(t *testing.T) {
	c := newChecked(t, nil)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 50 {
				s := valueAfterRelease(c)
				err := c.Run(func() { _ = strings.Clone(s) })
				if !errors.Is(err, ErrUseAfterRelease) {
					errs <- fmt.Errorf("goroutine %d, round %d: %v", g, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	closeChecked(t, c)
}
