// The few places pool turns addresses into slices, each with why it is sound.

package pool

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/offheap/offheap/internal/check"

	"github.com/offheap/offheap/vmem"
)

// view returns n bytes at offset off of the data region.
//
// Sound because p.base is the data region's vmem.Region.Base (see there),
// every caller has checked off+n against the ready length (directly, or
// because the allocator only hands out ready space), and the region stays
// mapped while the Pool is reachable (Close retires it with vmem.Retire).
func (p *Pool) view(off, n uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(p.base, off)), n)
}

// slot returns slot i, without a bounds check: the slot table is the hot
// path's main data structure, and its indices come from the pool's own
// links and free stack, or (from a Ref) were checked against slotsReady.
//
// Sound because i < slotsReady <= len(p.slots), which the checked build
// verifies, and p.slots lies in the meta region, mapped while p is reachable.
func (p *Pool) slot(i uint32) *slot {
	if check.On && uint64(i) >= atomic.LoadUint64(&p.slotsReady) {
		panic(fmt.Sprintf("pool: slot %d of %d", i, p.slotsReady))
	}
	return (*slot)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(p.slots)), uintptr(i)*slotSize))
}

// metaTables lays the per-P counters and then maxSlots slots over the meta
// region's whole reservation; only its ready prefix may be touched, which
// newSlot ensures through slotsReady.
//
// Sound because slot and pcounter contain no Go pointers (the collector has
// nothing to find in them and they may live outside the heap), the region is
// page aligned, and it is reserved for countersSize + maxSlots*slotSize bytes.
func metaTables(r *vmem.Region, maxSlots int) ([]pcounter, []slot) {
	base := r.Base()
	counters := unsafe.Slice((*pcounter)(base), maxProcs)
	slots := unsafe.Slice((*slot)(unsafe.Add(base, countersSize)), maxSlots)
	return counters, slots
}

// The sizes and offsets the code above and the types' docs rely on, checked
// by the compiler: each array length is a constant that underflows, and so
// does not compile, if the layout differs.
var (
	// slot takes slotSize (40) bytes, which slot(i) steps by.
	_ [slotSize - unsafe.Sizeof(slot{})]byte
	_ [unsafe.Sizeof(slot{}) - slotSize]byte
	// pcounter fills one 64-byte cache line, and countersSize holds maxProcs of them.
	_ [64 - unsafe.Sizeof(pcounter{})]byte
	_ [unsafe.Sizeof(pcounter{}) - 64]byte
	_ [countersSize - maxProcs*unsafe.Sizeof(pcounter{})]byte
	_ [maxProcs*unsafe.Sizeof(pcounter{}) - countersSize]byte
	// No cache line holds both the lock word and what readers read, nor what
	// readers read and what writers write, however the Pool is aligned.
	_ [unsafe.Offsetof(Pool{}.base) - (unsafe.Offsetof(Pool{}.seq) + 8 + 63)]byte
	_ [unsafe.Offsetof(Pool{}.capacity) - (unsafe.Offsetof(Pool{}.overflow) + unsafe.Sizeof(overflowCounts{}) + 63)]byte
)
