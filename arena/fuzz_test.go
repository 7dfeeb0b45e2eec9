package arena

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzAllocator runs random operation sequences, decoded from the fuzz
// input, against the allocator and one cache handle, and checks them against
// a model: the live blocks and the bytes each should hold. Bad frees (double,
// foreign, interior) are mixed in and must change nothing.
func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 20, 1, 1, 0, 1, 0, 2, 0, 40, 3, 0, 6})
	f.Add([]byte{0, 200, 7, 0, 100, 0, 0, 50, 9, 1, 1, 1, 4, 5, 2, 1, 3, 0})
	f.Add(bytes.Repeat([]byte{0, 64, 0, 1, 0, 1}, 40))
	f.Add(bytes.Repeat([]byte{0, 255, 3, 8, 16, 0, 1, 7, 2}, 30))
	f.Fuzz(func(t *testing.T, ops []byte) {
		a, err := New(&Options{Reserve: 4 * ArenaSize, ReleaseBatch: 2, KeepEmpty: int(len(ops)%3) - 1})
		if err != nil {
			t.Fatal(err)
		}
		m := &model{t: t, a: a, c: a.NewCache()}
		for len(ops) > 0 {
			op := ops[0]
			ops = ops[1:]
			arg := func() int {
				if len(ops) == 0 {
					return 0
				}
				v := int(ops[0])
				ops = ops[1:]
				return v
			}
			switch op % 9 {
			case 0:
				m.alloc(arg()*arg()%5000, op&8 != 0)
			case 1:
				m.free(arg(), op&8 != 0)
			case 2:
				m.realloc(arg(), arg()*arg()%5000)
			case 3:
				m.badFree(arg(), op&8 != 0)
			case 4:
				a.Purge()
			case 5:
				m.c.Flush()
			case 6:
				m.verify()
			case 7:
				m.doubleFree(arg(), op&8 != 0)
			case 8:
				m.strayFree(arg()<<8|arg(), op&8 != 0)
			}
		}
		m.verify()
		for len(m.live) > 0 {
			m.free(0, false)
		}
		m.c.Flush()
		if s := a.Stats(); s.InUseBlocks != 0 || s.Cached != 0 || s.LargeBlocks != 0 {
			t.Fatalf("after freeing every block: %v", s)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

type liveBlock struct {
	b    []byte
	seed byte
}

type model struct {
	t     *testing.T
	a     *Allocator
	c     *Cache
	live  []liveBlock
	freed [][]byte
	seed  byte
}

func (m *model) alloc(n int, viaCache bool) {
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
	m.live = append(m.live, liveBlock{b, m.seed})
}

func (m *model) pick(i int) int { return i % len(m.live) }

func (m *model) free(i int, viaCache bool) {
	if len(m.live) == 0 {
		return
	}
	i = m.pick(i)
	x := m.live[i]
	if !holds(x.b, x.seed) {
		m.t.Fatalf("block %d lost its data before Free", i)
	}
	var err error
	if viaCache {
		err = m.c.Free(x.b)
	} else {
		err = m.a.Free(x.b)
	}
	if err != nil {
		m.t.Fatalf("Free of live block: %v", err)
	}
	m.live = append(m.live[:i], m.live[i+1:]...)
	m.freed = append(m.freed, x.b)
}

func (m *model) realloc(i, n int) {
	if len(m.live) == 0 {
		return
	}
	i = m.pick(i)
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
	}
	fill(nb, x.seed)
	m.live[i].b = nb
}

// badFree frees something that is not a block: an interior slice of a live
// block, or Go heap memory.
func (m *model) badFree(i int, viaCache bool) {
	b := make([]byte, 32)
	if len(m.live) > 0 && len(m.live[m.pick(i)].b) > 1 {
		b = m.live[m.pick(i)].b[1:]
	}
	m.rejected(b, viaCache, ErrForeign)
}

// strayFree frees a 16-byte slice at an arbitrary offset of the carved
// arenas that is not the start of a live block.
func (m *model) strayFree(at int, viaCache bool) {
	span := int(m.a.carved.Load()) * ArenaSize
	if span == 0 {
		return
	}
	off := uintptr(at * 16 % span)
	if at%3 == 0 {
		off += uintptr(at % 16)
	}
	b := m.a.block(off, 16)
	for _, x := range m.live {
		if addrOf(x.b) == addrOf(b) {
			return
		}
	}
	before := snapshot(m.a)
	var err error
	if viaCache {
		err = m.c.Free(b)
	} else {
		err = m.a.Free(b)
	}
	if !errors.Is(err, ErrForeign) && !errors.Is(err, ErrDoubleFree) {
		m.t.Fatalf("free at stray offset %#x: %v", off, err)
	}
	if after := snapshot(m.a); after != before {
		m.t.Fatalf("stray free changed state:\n%s\n%s", before, after)
	}
}

// doubleFree frees an already freed slice again, unless its address has
// been handed out again since.
func (m *model) doubleFree(i int, viaCache bool) {
	if len(m.freed) == 0 {
		return
	}
	b := m.freed[i%len(m.freed)]
	for _, x := range m.live {
		if addrOf(x.b) == addrOf(b) {
			return
		}
	}
	m.rejected(b, viaCache, ErrDoubleFree)
}

// rejected checks that freeing b fails (with want, or ErrForeign for a freed
// block whose page now serves another class) and changes nothing.
func (m *model) rejected(b []byte, viaCache bool, want error) {
	before := snapshot(m.a)
	var err error
	if viaCache {
		err = m.c.Free(b)
	} else {
		err = m.a.Free(b)
	}
	if !errors.Is(err, want) && !(want == ErrDoubleFree && errors.Is(err, ErrForeign)) {
		m.t.Fatalf("bad free: got %v, want %v", err, want)
	}
	if after := snapshot(m.a); after != before {
		m.t.Fatalf("bad free changed state:\n%s\n%s", before, after)
	}
	m.verify()
}

func (m *model) verify() {
	for i, x := range m.live {
		if !holds(x.b, x.seed) {
			m.t.Fatalf("live block %d (%d bytes) lost its data", i, len(x.b))
		}
	}
}
