// The one place the arena suite turns addresses into slices: a table of
// block pointers kept outside the Go heap, so the burst workload's own
// bookkeeping neither shows in the Go heap nor lingers after it is dropped.

package churn

import (
	"unsafe"

	"github.com/offheap/offheap/vmem"
)

// ptrTable holds n pointers to blocks of the arena in a vmem region.
type ptrTable struct {
	r        *vmem.Region
	slots    []*byte
	released int // bytes of the table given back so far
}

// newPtrTable maps a table of n pointers.
//
// Sound because the region is page aligned (so pointer aligned), holds n
// pointers, lives outside the Go heap (the collector never scans it) and is
// only used to hold pointers to arena blocks, which are outside the Go heap
// too, so no Go object is kept alive or missed through it.
func newPtrTable(n int) (*ptrTable, error) {
	r, err := vmem.Reserve(n*8, &vmem.Options{Name: "churn pointers"})
	if err != nil {
		return nil, err
	}
	if err := r.Grow(n * 8); err != nil {
		_ = r.Close()
		return nil, err
	}
	slots := unsafe.Slice((**byte)(r.Base()), n)
	return &ptrTable{r: r, slots: slots}, nil
}

func (t *ptrTable) set(i int, b []byte) { t.slots[i] = unsafe.SliceData(b) }

// get returns the size-byte block whose pointer is in slot i. Sound because
// the slot holds the start of a live block of that size.
func (t *ptrTable) get(i, size int) []byte { return unsafe.Slice(t.slots[i], size) }

// releaseBelow gives back the table's whole MiBs below slot i, so the
// table's own memory falls as the burst is freed and does not hide the
// allocator's. Slots below i must not be used again.
func (t *ptrTable) releaseBelow(i int) error {
	upTo := i * 8 &^ (1<<20 - 1)
	if upTo <= t.released {
		return nil
	}
	if err := t.r.Release(t.released, upTo-t.released); err != nil {
		return err
	}
	t.released = upTo
	return nil
}

func (t *ptrTable) close() error {
	t.slots = nil
	return t.r.Close()
}

// offsetIn returns where b starts in mem. Sound because only the addresses
// are compared: callers pass a b cut from mem.
func offsetIn(mem, b []byte) int {
	return int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(unsafe.SliceData(mem))))
}
