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

func TestAllocateAlignedZeroed(t *testing.T) {
	a := newArena(t)
	m := New(a)
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
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	closeArena(t, a)
}

func TestReallocateKeepsData(t *testing.T) {
	a := newArena(t)
	m := New(a)
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
	if err := m.Err(); err != nil {
		t.Fatal(err)
	}
	closeArena(t, a)
}

func TestBadFreeChangesNothing(t *testing.T) {
	a := newArena(t)
	m := New(a)
	b := m.Allocate(100)
	m.Free(b)
	before := a.Stats().InUseBlocks
	m.Free(b)                // double
	m.Free(make([]byte, 64)) // foreign
	if after := a.Stats().InUseBlocks; after != before {
		t.Fatalf("bad frees changed the arena: %d -> %d blocks", before, after)
	}
	err := m.Err()
	if !errors.Is(err, arena.ErrDoubleFree) {
		t.Fatalf("Err after a double free: %v", err)
	}
	closeArena(t, a)
}

// TestBuilders builds Arrow arrays through a checked allocator over the
// arena and checks every buffer comes back.
func TestBuilders(t *testing.T) {
	a := newArena(t)
	mem := memory.NewCheckedAllocator(New(a))
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
	if a.Stats().InUseBlocks == 0 {
		t.Fatal("no buffer came from the arena")
	}
	ints.Release()
	strs.Release()
	lists.Release()
	mem.AssertSize(t, 0)
	closeArena(t, a)
}

// FuzzAllocator runs random Allocate / Reallocate / Free sequences against a
// model of the live buffers and their contents.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 10, 0, 200, 1, 0, 50, 2, 1, 0, 3, 2, 0})
	f.Add([]byte{0, 255, 1, 0, 255, 1, 0, 3, 2, 1})
	f.Fuzz(func(t *testing.T, ops []byte) {
		a := newArena(t)
		m := New(a)
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
					live = append(live[:j], live[j+1:]...)
				}
			case 2:
				if len(live) > 0 {
					j := int(ops[i+2]) % len(live)
					x := live[j]
					check(x)
					old := len(x.b)
					x.b = m.Reallocate(size, x.b)
					check(buf{x.b[:min(old, size)], x.seed})
					fill(x, min(old, size))
					live[j] = x
				}
			}
		}
		for _, x := range live {
			check(x)
			m.Free(x.b)
		}
		if err := m.Err(); err != nil {
			t.Fatal(err)
		}
		closeArena(t, a)
	})
}

// TestConcurrentBuilders builds arrays from 4 goroutines on one allocator,
// as Arrow programs do.
func TestConcurrentBuilders(t *testing.T) {
	a := newArena(t)
	mem := memory.NewCheckedAllocator(New(a))
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
	closeArena(t, a)
}
