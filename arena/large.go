// Large blocks: requests above MaxSmall get a vmem region of their own,
// unmapped as soon as they are freed.

package arena

import (
	"github.com/offheap/offheap/vmem"
)

// rememberFreed is how many freed large addresses are remembered so a second
// Free of one is ErrDoubleFree rather than ErrForeign.
const rememberFreed = 1024

// largeSet tracks the live large blocks by address. The map is pointer-free
// (address to slot); the regions sit in a slot table reused through a free list.
type largeSet struct {
	byAddr  map[uintptr]int32
	regions []*vmem.Region
	free    []int32
	freed   map[uintptr]struct{} // recently freed addresses, oldest first in ring
	ring    []uintptr
	n       int // live large blocks
	bytes   int // bytes mapped for them
}

// allocLarge maps a region for n bytes and registers it.
func (a *Allocator) allocLarge(n int) ([]byte, error) {
	r, err := vmem.Reserve(n, &vmem.Options{Name: "arena large " + a.name})
	if err == nil {
		if err = r.Grow(n); err != nil {
			_ = r.Close()
		}
	}
	if err != nil {
		return nil, a.sizeError("alloc", n, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		_ = r.Close()
		return nil, a.sizeError("alloc", n, ErrClosed)
	}
	b := r.Bytes()
	a.large.add(addrOf(b), r)
	return b[:n:n], nil
}

func (s *largeSet) add(addr uintptr, r *vmem.Region) {
	if s.byAddr == nil {
		s.byAddr, s.freed = map[uintptr]int32{}, map[uintptr]struct{}{}
	}
	var slot int32
	if k := len(s.free); k > 0 {
		slot, s.free = s.free[k-1], s.free[:k-1]
		s.regions[slot] = r
	} else {
		slot = int32(len(s.regions))
		s.regions = append(s.regions, r)
	}
	s.byAddr[addr] = slot
	delete(s.freed, addr) // the address is live again
	s.n++
	s.bytes += r.Len()
}

// lookup returns the region of the live large block starting at b, or why
// there is none.
func (s *largeSet) lookup(b []byte) (int32, error) {
	addr := addrOf(b)
	slot, ok := s.byAddr[addr]
	switch {
	case !ok && addr != 0 && s.isFreed(addr):
		return -1, ErrDoubleFree
	case !ok:
		return -1, ErrForeign
	case cap(b) > s.regions[slot].Len():
		return -1, ErrForeign
	}
	return slot, nil
}

func (s *largeSet) isFreed(addr uintptr) bool {
	_, ok := s.freed[addr]
	return ok
}

// remove unregisters a live block and remembers its address as freed.
func (s *largeSet) remove(addr uintptr, slot int32) *vmem.Region {
	r := s.regions[slot]
	s.regions[slot] = nil
	s.free = append(s.free, slot)
	delete(s.byAddr, addr)
	if len(s.ring) == rememberFreed {
		delete(s.freed, s.ring[0])
		s.ring = append(s.ring[:0], s.ring[1:]...)
	}
	s.ring = append(s.ring, addr)
	s.freed[addr] = struct{}{}
	s.n--
	s.bytes -= r.Len()
	return r
}

// freeLarge unmaps the large block b.
func (a *Allocator) freeLarge(b []byte) error {
	a.mu.Lock()
	if a.closed.Load() {
		a.mu.Unlock()
		return a.blockError("free", addrOf(b), ErrClosed)
	}
	slot, err := a.large.lookup(b)
	if err != nil {
		a.mu.Unlock()
		return a.blockError("free", addrOf(b), err)
	}
	r := a.large.remove(addrOf(b), slot)
	a.mu.Unlock()
	if err := r.Close(); err != nil {
		return a.blockError("free", addrOf(b), err)
	}
	return nil
}

// largeWhole validates b as freeLarge would and returns its whole mapping.
func (a *Allocator) largeWhole(b []byte) ([]byte, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return nil, a.blockError("realloc", addrOf(b), ErrClosed)
	}
	slot, err := a.large.lookup(b)
	if err != nil {
		return nil, a.blockError("realloc", addrOf(b), err)
	}
	return a.large.regions[slot].Bytes(), nil
}
