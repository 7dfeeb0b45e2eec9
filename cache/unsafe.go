// The few places the cache turns addresses into slices and pointers, each
// with why it is sound: off-heap tables of plain structs, and views of the
// pool's memory.

package cache

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
	"github.com/offheap/offheap/vmem"
)

// offTable is an array of T laid over a vmem reservation: room for max
// elements is reserved, and a prefix of ready elements is mapped, growing in
// place, so an element's address never changes and lock-free readers may
// index it at any time below ready. T must hold no Go pointers.
type offTable[T any] struct {
	r     *vmem.Region
	base  unsafe.Pointer
	max   uint64
	ready atomic.Uint64 // elements mapped
}

func elemSize[T any]() uint64 { var t T; return uint64(unsafe.Sizeof(t)) }

// reserve reserves room for max elements (at least one) and makes the first
// page ready.
//
// Sound because T holds no Go pointers (the collector has nothing to find in
// it, and it may live outside the heap) and the reservation is page aligned,
// which aligns every element type used here.
func (t *offTable[T]) reserve(max uint64, name string) error {
	max = max1(max)
	r, err := vmem.Reserve(int(max*elemSize[T]()), &vmem.Options{Name: name})
	if err != nil {
		return err
	}
	if err := r.Grow(vmem.PageSize()); err != nil {
		_ = r.Close()
		return err
	}
	t.r, t.max, t.base = r, max, r.Base()
	t.ready.Store(min(uint64(r.Len())/elemSize[T](), max))
	return nil
}

func max1(n uint64) uint64 { return max(n, 1) }

// grow makes at least n elements ready, doubling; callers serialise growth.
func (t *offTable[T]) grow(n uint64) error {
	if n <= t.ready.Load() {
		return nil
	}
	if n > t.max {
		return fmt.Errorf("%d elements of %d reserved: %w", n, t.max, vmem.ErrExhausted)
	}
	want := min(max(n, 2*t.ready.Load()), t.max) * elemSize[T]()
	if err := t.r.Grow(int(want)); err != nil {
		return err
	}
	t.ready.Store(min(uint64(t.r.Len())/elemSize[T](), t.max))
	return nil
}

// at returns element i, without a bounds check outside the checked build.
//
// Sound because callers pass i below ready (a lock-free reader checks it
// first), and the reservation stays mapped while the table is reachable
// (see drop).
func (t *offTable[T]) at(i uint64) *T {
	if check.On && i >= t.ready.Load() {
		panic(fmt.Sprintf("cache: element %d of %d ready", i, t.ready.Load()))
	}
	return (*T)(unsafe.Add(t.base, i*elemSize[T]()))
}

// clear zeroes elements [0, n), which are ready.
//
// Sound for the same reasons as at: n is at most ready.
func (t *offTable[T]) clear(n uint64) {
	clear(unsafe.Slice((*T)(t.base), n))
}

// discard gives the pages wholly inside elements [from, to) back to the
// OS; they read as zero after. The checked build makes them accessible
// again at once, since writers reuse them without asking.
func (t *offTable[T]) discard(from, to uint64) {
	ps, es := uint64(vmem.PageSize()), elemSize[T]()
	a, b := (from*es+ps-1)&^(ps-1), min(to*es, uint64(t.r.Len()))&^(ps-1)
	if b > a && t.r.Release(int(a), int(b-a)) == nil && check.On {
		_ = t.r.Reuse(int(a), int(b-a))
	}
}

// close unmaps the table at once, after a failed New.
func (t *offTable[T]) close() {
	if t.r != nil {
		_ = t.r.Close()
	}
}

// view returns n bytes at offset off of the pool's memory.
//
// Sound because off+n is at most s.hi, the end of the highest segment the
// store ever placed: that memory was ready then, and a pool's memory stays
// mapped while the pool is reachable, which the store keeps it.
func (s *store) view(off, n uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(s.base, off)), n)
}

// offsetOf returns the offset in the pool of a view the pool returned.
func (s *store) offsetOf(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(s.base))
}

// spareHolds reports whether appending to dst would write over some of b:
// whether b lies, in part, in dst's spare capacity.
//
// Sound because it only compares addresses, and holds none.
func spareHolds(dst, b []byte) bool {
	spare := dst[len(dst):cap(dst)]
	if len(spare) == 0 || len(b) == 0 {
		return false
	}
	s, p := uintptr(unsafe.Pointer(unsafe.SliceData(spare))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p < s+uintptr(len(spare)) && s < p+uintptr(len(b))
}

// poolBase returns the address of offset 0 of p's memory: the address of a
// zero-length segment's view, less its offset.
//
// Sound because a pool's memory never moves from New to Close, and it lies
// outside the Go heap, so holding its address keeps nothing alive.
func poolBase(p *pool.Pool) (unsafe.Pointer, error) {
	ref, b, err := p.Reserve(0)
	if err != nil {
		return nil, err
	}
	seg, err := p.Info(ref)
	_ = p.Unlatch(ref)
	_ = p.Release(ref)
	if err != nil {
		return nil, err
	}
	return unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), -seg.Offset), nil
}

// pagesOf rounds n bytes up to whole pages.
func pagesOf(n int) int {
	ps := vmem.PageSize()
	return (n + ps - 1) / ps * ps
}
