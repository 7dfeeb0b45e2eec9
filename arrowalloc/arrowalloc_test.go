package arrowalloc

import (
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/offheap/offheap/arena"
)

func newArena(t testing.TB) *arena.Allocator {
	t.Helper()
	a, err := arena.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// closeArena checks that Arrow freed every buffer: the arena reports no leak.
func closeArena(t testing.TB, a *arena.Allocator) {
	t.Helper()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func aligned(b []byte) bool {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b)))%Alignment == 0
}

// subject is an allocator under test in one of the two modes, with what the
// mode-independent tests need to know of it.
type subject struct {
	memory.Allocator
	err    func() error       // the first bad free
	live   func() int         // buffers allocated
	finish func(t testing.TB) // fails t if a buffer is live, then closes
}

// modes are the allocators every mode-independent test runs on: New over a
// fresh arena, and NewChecked.
var modes = []struct {
	name string
	open func(t testing.TB) subject
}{
	{"normal", func(t testing.TB) subject {
		a := newArena(t)
		m := New(a)
		return subject{m, m.Err, func() int { return a.Stats().InUseBlocks }, func(t testing.TB) { closeArena(t, a) }}
	}},
	{"checked", func(t testing.TB) subject {
		c := newChecked(t, nil)
		live := func() int {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.live
		}
		finish := func(t testing.TB) {
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return subject{c, c.Err, live, finish}
	}},
}

// forModes runs f as a subtest per mode.
func forModes(t *testing.T, f func(t *testing.T, m subject)) {
	for _, md := range modes {
		t.Run(md.name, func(t *testing.T) { f(t, md.open(t)) })
	}
}

func TestAllocateAlignedZeroed(t *testing.T) { forModes(t, testAllocateAlignedZeroed) }

func testAllocateAlignedZeroed(t *testing.T, m subject) {
	var bufs [][]byte
	for size := 1; size < 20000; size = size*5/4 + 1 {
		b := m.Allocate(size)
		if len(b) != size || !aligned(b) {
			t.Fatalf("Allocate(%d): len %d, aligned %v", size, len(b), aligned(b))
		}
		for i, x := range b {
			if x != 0 {
				t.Fatalf("Allocate(%d): byte %d is %#x", size, i, x)
			}
		}
		for i := range b {
			b[i] = 0xAA
		}
		bufs = append(bufs, b)
	}
	for _, b := range bufs {
		m.Free(b)
	}
	if z := m.Allocate(0); len(z) != 0 {
		t.Fatal("Allocate(0) not empty")
	} else {
		m.Free(z)
	}
	if err := m.err(); err != nil {
		t.Fatal(err)
	}
	m.finish(t)
}

func TestReallocateKeepsData(t *testing.T) { forModes(t, testReallocateKeepsData) }

func testReallocateKeepsData(t *testing.T, m subject) {
	b := m.Allocate(10)
	for i := range b {
		b[i] = byte(i + 1)
	}
	for _, size := range []int{20, 64, 65, 500, 3000, 100000, 30, 7} {
		old := len(b)
		b = m.Reallocate(size, b)
		if len(b) != size || !aligned(b) {
			t.Fatalf("Reallocate(%d): len %d aligned %v", size, len(b), aligned(b))
		}
		k := min(old, size)
		for i := range k {
			if b[i] != byte(i+1) {
				t.Fatalf("Reallocate(%d) from %d lost byte %d", size, old, i)
			}
		}
		for i := k; i < size; i++ {
			if b[i] != 0 {
				t.Fatalf("Reallocate(%d) from %d: byte %d not zero", size, old, i)
			}
			b[i] = byte(i + 1)
		}
	}
	b = m.Reallocate(0, b)
	m.Free(b)
	if err := m.err(); err != nil {
		t.Fatal(err)
	}
	m.finish(t)
}

func TestBadFreeChangesNothing(t *testing.T) { forModes(t, testBadFreeChangesNothing) }

func testBadFreeChangesNothing(t *testing.T, m subject) {
	b := m.Allocate(100)
	m.Free(b)
	before := m.live()
	m.Free(b)                // double
	m.Free(make([]byte, 64)) // foreign
	if after := m.live(); after != before {
		t.Fatalf("bad frees changed the arena: %d -> %d blocks", before, after)
	}
	err := m.err()
	if !errors.Is(err, arena.ErrDoubleFree) {
		t.Fatalf("Err after a double free: %v", err)
	}
	m.finish(t)
}

// TestBuilders builds Arrow arrays through Arrow's checked allocator over
// ours and checks every buffer comes back.
func TestBuilders(t *testing.T) { forModes(t, testBuilders) }

func testBuilders(t *testing.T, m subject) {
	mem := memory.NewCheckedAllocator(m)
	defer mem.AssertSize(t, 0)

	ib := array.NewInt64Builder(mem)
	for i := range 10000 {
		if i%7 == 0 {
			ib.AppendNull()
		} else {
			ib.Append(int64(i * 3))
		}
	}
	ints := ib.NewInt64Array()
	ib.Release()

	sb := array.NewStringBuilder(mem)
	for i := range 5000 {
		sb.Append(fmt.Sprintf("row-%d", i))
	}
	strs := sb.NewStringArray()
	sb.Release()

	lb := array.NewListBuilder(mem, arrow.PrimitiveTypes.Float64)
	vb := lb.ValueBuilder().(*array.Float64Builder)
	for i := range 1000 {
		lb.Append(true)
		for j := range i % 5 {
			vb.Append(float64(i + j))
		}
	}
	lists := lb.NewListArray()
	lb.Release()

	for i := range 10000 {
		if got := ints.IsNull(i); got != (i%7 == 0) {
			t.Fatalf("int %d: null %v", i, got)
		}
		if i%7 != 0 && ints.Value(i) != int64(i*3) {
			t.Fatalf("int %d: %d", i, ints.Value(i))
		}
	}
	if strs.Value(4321) != "row-4321" || strs.Len() != 5000 {
		t.Fatalf("strings: %q, %d", strs.Value(4321), strs.Len())
	}
	if lists.Len() != 1000 || lists.ListValues().Len() != 2000 {
		t.Fatalf("lists: %d of %d values", lists.Len(), lists.ListValues().Len())
	}
	if m.live() == 0 {
		t.Fatal("no buffer came from the allocator")
	}
	ints.Release()
	strs.Release()
	lists.Release()
	mem.AssertSize(t, 0)
	m.finish(t)
}

// FuzzAllocator runs random Allocate / Reallocate / Free sequences in both
// modes against a model of the live buffers and their contents. In checked
// mode every released buffer must also fault, reported as a use after release.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 10, 0, 200, 1, 0, 50, 2, 1, 0, 3, 2, 0})
	f.Add([]byte{0, 255, 1, 0, 255, 1, 0, 3, 2, 1})
	f.Add([]byte{0, 0, 0, 2, 90, 0, 0, 64, 9, 2, 0, 0, 1, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		for _, md := range modes {
			m := md.open(t)
			c, _ := m.Allocator.(*Checked)
			fuzzAllocator(t, m, c, ops)
		}
	})
}

func fuzzAllocator(t *testing.T, m subject, c *Checked, ops []byte) {
	type buf struct {
		b    []byte
		seed byte
	}
	var live []buf
	check := func(x buf) {
		if !aligned(x.b) && len(x.b) > 0 {
			t.Fatal("unaligned buffer")
		}
		for i := range x.b {
			if x.b[i] != x.seed+byte(i) {
				t.Fatalf("buffer of %d lost byte %d", len(x.b), i)
			}
		}
	}
	fill := func(x buf, from int) {
		for i := from; i < len(x.b); i++ {
			if x.b[i] != 0 {
				t.Fatalf("byte %d of %d not zero", i, len(x.b))
			}
			x.b[i] = x.seed + byte(i)
		}
	}
	gone := func(b []byte) { // b was released: in checked mode it must fault
		if c == nil || len(b) == 0 {
			return
		}
		err := c.Run(func() { sink = b[len(b)-1] })
		if e := (*BufferError)(nil); !errors.As(err, &e) || !errors.Is(err, ErrUseAfterRelease) || e.Released == nil {
			t.Fatalf("read of a released %d-byte buffer: %v", len(b), err)
		}
	}
	for i := 0; i+2 < len(ops); i += 3 {
		size := int(ops[i+1]) * int(ops[i+1]) / 4
		switch ops[i] % 3 {
		case 0:
			x := buf{m.Allocate(size), ops[i+2]}
			fill(x, 0)
			live = append(live, x)
		case 1:
			if len(live) > 0 {
				j := int(ops[i+2]) % len(live)
				check(live[j])
				m.Free(live[j].b)
				gone(live[j].b)
				live = append(live[:j], live[j+1:]...)
			}
		case 2:
			if len(live) > 0 {
				j := int(ops[i+2]) % len(live)
				x := live[j]
				check(x)
				old := x.b
				x.b = m.Reallocate(size, x.b)
				check(buf{x.b[:min(len(old), size)], x.seed})
				gone(old)
				fill(x, min(len(old), size))
				live[j] = x
			}
		}
	}
	for _, x := range live {
		check(x)
		m.Free(x.b)
	}
	if err := m.err(); err != nil {
		t.Fatal(err)
	}
	m.finish(t)
}

// TestConcurrentBuilders builds arrays from 4 goroutines on one allocator,
// as Arrow programs do.
func TestConcurrentBuilders(t *testing.T) { forModes(t, testConcurrentBuilders) }

func testConcurrentBuilders(t *testing.T, m subject) {
	mem := memory.NewCheckedAllocator(m)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for round := range 20 {
				b := array.NewInt64Builder(mem)
				for i := range 1000 + round*100 {
					b.Append(int64(g*1_000_000 + i))
				}
				arr := b.NewInt64Array()
				b.Release()
				for i := range arr.Len() {
					if arr.Value(i) != int64(g*1_000_000+i) {
						errs <- fmt.Errorf("goroutine %d: value %d is %d", g, i, arr.Value(i))
						arr.Release()
						return
					}
				}
				arr.Release()
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	mem.AssertSize(t, 0)
	m.finish(t)
}
