// The few places the exchange turns pool addresses into pointers, each with why it is sound.

package exchange

import (
	"unsafe"

	"github.com/offheap/offheap/pool"
)

// learnBase records the pool's base address, from segment ref whose view
// is b, the first time the exchange reserves a segment.
//
// Sound because a pool's memory is one reservation whose base never moves
// from New to Close (pool's design), and Info's offset is b's distance from
// it; the result points outside the Go heap, so the collector ignores it.
func (x *Exchange) learnBase(ref pool.Ref, b []byte) error {
	if x.base.Load() != nil {
		return nil
	}
	seg, err := x.pool.Info(ref)
	if err != nil {
		return err
	}
	x.base.CompareAndSwap(nil, (*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), -seg.Offset)))
	return nil
}

// offsetOf returns view b's offset from the pool's base. Pointer
// subtraction through uintptr creates no pointer, so it is always sound.
func (x *Exchange) offsetOf(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(x.base.Load())))
}

// view returns the address of a record's segment.
//
// Sound because the segment is latched while the exchange keeps it
// (so compaction never moves it and the pool cannot close: Close is ErrBusy
// while latches are outstanding), and off was measured from the base, which
// never moves.
func (x *Exchange) view(s *segInfo) unsafe.Pointer {
	return unsafe.Add(unsafe.Pointer(x.base.Load()), s.off)
}

// bytes returns the first n bytes of a record's segment (n <= s.size); see view.
func (x *Exchange) bytes(s *segInfo, n uint32) []byte {
	return unsafe.Slice((*byte)(x.view(s)), n)
}
