package arena

import (
	"bytes"
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/offheap/offheap/internal/fuzzops"
)

// allocatorModel is FuzzAllocator's reference for an Allocator and one
// Cache of it: the blocks a user holds, the bytes each should hold and the
// size of the block behind it, and the slices freed since. Each method does
// one operation to the allocator and checks its answer against the model;
// check compares everything else after every operation.
type allocatorModel struct {
	t     *testing.T
	a     *Allocator
	c     *Cache
	live  []modelBlock
	freed [][]byte
	seed  byte
}

// modelBlock is a block a user holds.
type modelBlock struct {
	b     []byte
	seed  byte // b[i] holds seed+i
	block int  // bytes of the block behind b: its class's size, or whole pages
}

// blockSize is the size of the block Alloc(n) hands out.
func blockSize(n int) int {
	if n > MaxSmall {
		return (n + osPage - 1) &^ (osPage - 1)
	}
	return classSize[classOf(n)]
}

// freeVia frees b through the cache or the allocator.
func (m *allocatorModel) freeVia(b []byte, viaCache bool) error {
	if viaCache {
		return m.c.Free(b)
	}
	return m.a.Free(b)
}

// alloc allocates n bytes: zeroed, of length and capacity n, or (only when
// the reservation is full) ErrExhausted with nothing changed.
func (m *allocatorModel) alloc(n int, viaCache bool) {
	before := snapshot(m.a)
	var b []byte
	var err error
	if viaCache {
		b, err = m.c.Alloc(n)
	} else {
		b, err = m.a.Alloc(n)
	}
	if errors.Is(err, ErrExhausted) {
		if !viaCache && snapshot(m.a) != before {
			m.t.Fatalf("failed Alloc(%d) changed state", n)
		}
		return
	}
	if err != nil || len(b) != n || cap(b) != n {
		m.t.Fatalf("Alloc(%d): len %d cap %d err %v", n, len(b), cap(b), err)
	}
	for i, x := range b {
		if x != 0 {
			m.t.Fatalf("Alloc(%d): byte %d is %#x", n, i, x)
		}
	}
	m.seed++
	fill(b, m.seed)
	m.live = append(m.live, modelBlock{b, m.seed, blockSize(n)})
}

// free frees the i-th live block (mod their number); a small one through a
// slice of half its length and capacity if short is set.
func (m *allocatorModel) free(i int, viaCache, short bool) {
	if len(m.live) == 0 {
		return
	}
	i %= len(m.live)
	x := m.live[i]
	b := x.b
	if short && cap(b) <= MaxSmall {
		b = b[: len(b)/2 : len(b)/2]
	}
	if err := m.freeVia(b, viaCache); err != nil {
		m.t.Fatalf("Free of a live %d-byte block: %v", len(x.b), err)
	}
	m.live = append(m.live[:i], m.live[i+1:]...)
	m.freed = append(m.freed, x.b)
}

// realloc resizes the i-th live block to n bytes, keeping its data.
func (m *allocatorModel) realloc(i, n int) {
	if len(m.live) == 0 {
		return
	}
	i %= len(m.live)
	x := m.live[i]
	nb, err := m.a.Realloc(x.b, n)
	if errors.Is(err, ErrExhausted) {
		return
	}
	if err != nil || len(nb) != n {
		m.t.Fatalf("Realloc(%d -> %d): len %d, %v", len(x.b), n, len(nb), err)
	}
	k := min(len(x.b), n)
	if !holds(nb[:k], x.seed) {
		m.t.Fatalf("Realloc(%d -> %d) lost data", len(x.b), n)
	}
	for _, v := range nb[k:] {
		if v != 0 {
			m.t.Fatalf("Realloc(%d -> %d): new bytes not zero", len(x.b), n)
		}
	}
	if addrOf(nb) != addrOf(x.b) {
		m.freed = append(m.freed, x.b)
		x.block = blockSize(n)
	}
	fill(nb, x.seed)
	x.b = nb
	m.live[i] = x
}

// badFree frees something that is not a block: an interior slice of a live
// block, or Go heap memory.
func (m *allocatorModel) badFree(i int, viaCache bool) {
	b := make([]byte, 32)
	if len(m.live) > 0 && len(m.live[i%len(m.live)].b) > 1 {
		b = m.live[i%len(m.live)].b[1:]
	}
	m.rejected(b, viaCache, ErrForeign)
}

// strayFree frees a 16-byte slice at an arbitrary offset of the carved
// arenas that is not the start of a live block.
func (m *allocatorModel) strayFree(at int, viaCache bool) {
	span := int(m.a.carved.Load()) * ArenaSize
	if span == 0 {
		return
	}
	off := uintptr(at * 16 % span)
	if at%3 == 0 {
		off += uintptr(at % 16)
	}
	b := m.a.block(off, 16)
	if m.isLive(b) {
		return
	}
	before := snapshot(m.a)
	if err := m.freeVia(b, viaCache); !errors.Is(err, ErrForeign) && !errors.Is(err, ErrDoubleFree) {
		m.t.Fatalf("free at stray offset %#x: %v", off, err)
	}
	if after := snapshot(m.a); after != before {
		m.t.Fatalf("stray free changed state:\n%s\n%s", before, after)
	}
}

// doubleFree frees an already freed slice again, unless its address has
// been handed out again since.
func (m *allocatorModel) doubleFree(i int, viaCache bool) {
	if len(m.freed) == 0 {
		return
	}
	if b := m.freed[i%len(m.freed)]; !m.isLive(b) {
		m.rejected(b, viaCache, ErrDoubleFree)
	}
}

// refusedFree frees the i-th live block while the OS refuses to take large
// blocks' pages back: a large block's Free fails with the OS's error and
// changes nothing (a small block's succeeds: it gives no pages back).
func (m *allocatorModel) refusedFree(i int) {
	if len(m.live) == 0 || m.a.large == nil {
		return
	}
	i %= len(m.live)
	x := m.live[i]
	ls := m.a.large
	release := ls.release
	ls.release = func(int, int) error { return fmt.Errorf("refused: %w", syscall.EAGAIN) }
	before := m.a.Stats()
	err := m.a.Free(x.b)
	ls.release = release
	if cap(x.b) <= MaxSmall {
		if err != nil {
			m.t.Fatalf("Free of a live small block: %v", err)
		}
		m.live = append(m.live[:i], m.live[i+1:]...)
		m.freed = append(m.freed, x.b)
		return
	}
	if !errors.Is(err, syscall.EAGAIN) || errors.Is(err, ErrDoubleFree) {
		m.t.Fatalf("Free of a large block the OS refused: %v", err)
	}
	after := m.a.Stats()
	for _, s := range []*Stats{&before, &after} {
		s.Resident, s.Releases, s.ReleaseErrors = 0, 0, 0
	}
	if fmt.Sprintf("%+v", after) != fmt.Sprintf("%+v", before) {
		m.t.Fatalf("refused Free changed the books:\n%+v\n%+v", before, after)
	}
}

// published reports whether the allocator knows how many blocks c holds
// (c publishes its count only at batch exchanges).
func (c *Cache) published() bool {
	for k, h := range c.held {
		if c.pub[k] != h {
			return false
		}
	}
	return true
}

// isLive reports whether a live block starts where b does.
func (m *allocatorModel) isLive(b []byte) bool {
	for _, x := range m.live {
		if addrOf(x.b) == addrOf(b) {
			return true
		}
	}
	return false
}

// rejected checks that freeing b fails (with want, or ErrForeign for a freed
// block whose page now serves another class or lies inside a large block)
// and changes nothing.
func (m *allocatorModel) rejected(b []byte, viaCache bool, want error) {
	before := snapshot(m.a)
	err := m.freeVia(b, viaCache)
	if !errors.Is(err, want) && !(want == ErrDoubleFree && errors.Is(err, ErrForeign)) {
		m.t.Fatalf("bad free: got %v, want %v", err, want)
	}
	if after := snapshot(m.a); after != before {
		m.t.Fatalf("bad free changed state:\n%s\n%s", before, after)
	}
}

// check compares the allocator with the model: every live block holds its
// data and is the user's in its state byte, Stats counts exactly the live
// blocks and their bytes (the small ones when the cache's count is
// published), and the span allocator's
// invariants hold.
func (m *allocatorModel) check() {
	var small, large, bytes int
	for i, x := range m.live {
		if !holds(x.b, x.seed) {
			m.t.Fatalf("live block %d (%d bytes) lost its data", i, len(x.b))
		}
		bytes += x.block
		if x.block > MaxSmall {
			large++
			continue
		}
		small++
		if off, ok := m.a.offsetOf(x.b); !ok || *m.a.stateAt(off, classOf(x.block)) != stateByte(classOf(x.block), stUser) {
			m.t.Fatalf("live block %d (%d bytes) not the user's in its state byte", i, len(x.b))
		}
	}
	s := m.a.Stats()
	if !m.c.published() {
		s.InUseBlocks, s.InUse = small+large, bytes // not exact meanwhile
	}
	if s.InUseBlocks != small+large || s.LargeBlocks != large || s.InUse != bytes {
		m.t.Fatalf("Stats: %d blocks (%d large) of %d bytes, model %d (%d large) of %d bytes: %v",
			s.InUseBlocks, s.LargeBlocks, s.InUse, small+large, large, bytes, s)
	}
	if ls := m.a.large; ls != nil {
		if err := ls.spans.verify(); err != nil {
			m.t.Fatal(err)
		}
	}
}

// FuzzAllocator runs random operation sequences, read from the fuzz input,
// against an allocator and one cache handle, and checks them against
// allocatorModel after every operation. Bad frees (double, foreign,
// interior, stray) are mixed in and must change nothing, as must a Free the
// OS refuses.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 20, 1, 1, 0, 1, 0, 2, 0, 40, 3, 0, 6})
	f.Add([]byte{0, 200, 7, 0, 100, 0, 0, 50, 9, 1, 1, 1, 4, 5, 2, 1, 3, 0})
	f.Add(bytes.Repeat([]byte{0, 64, 0, 1, 0, 1}, 40))
	f.Add(bytes.Repeat([]byte{0, 255, 3, 8, 16, 0, 1, 7, 2}, 30))
	f.Add([]byte{16, 200, 90, 16, 100, 100, 9, 0, 16, 255, 255, 1, 0, 9, 1, 7, 1, 5, 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := New(&Options{Reserve: 4 * ArenaSize, LargeReserve: 32 << 20, ReleaseBatch: 2, KeepEmpty: int(len(data)%3) - 1})
		if err != nil {
			t.Fatal(err)
		}
		m := &allocatorModel{t: t, a: a, c: a.NewCache()}
		ops := fuzzops.New(data)
		for ops.More() {
			op := ops.Byte()
			viaCache := op&8 != 0
			size := func() int {
				n := ops.Byte() * ops.Byte()
				if op&16 != 0 {
					return n * 16 // up to a megabyte: large blocks
				}
				return n % 5000
			}
			switch op % 10 {
			case 0:
				m.alloc(size(), viaCache)
			case 1:
				m.free(ops.Byte(), viaCache, op&32 != 0)
			case 2:
				m.realloc(ops.Byte(), size())
			case 3:
				m.badFree(ops.Byte(), viaCache)
			case 4:
				a.Purge()
			case 5:
				m.c.Flush()
			case 6:
				m.check()
			case 7:
				m.doubleFree(ops.Byte(), viaCache)
			case 8:
				m.strayFree(ops.Uint16(), viaCache)
			case 9:
				m.refusedFree(ops.Byte())
			}
			m.check()
		}
		for len(m.live) > 0 {
			m.free(0, false, false)
		}
		m.c.Flush()
		m.check()
		if s := a.Stats(); s.InUseBlocks != 0 || s.Cached != 0 || s.LargeBlocks != 0 {
			t.Fatalf("after freeing every block: %v", s)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
