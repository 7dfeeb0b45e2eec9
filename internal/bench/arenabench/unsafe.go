// The one place the arena suite turns addresses into slices: a table of
// block pointers kept outside the Go heap, so the burst workload's own
// bookkeeping neither shows in the Go heap nor lingers after it is dropped.

package arenabench

import (
	"unsafe"

	"github.com/offheap/offheap/vmem"
)

// ptrTable holds n pointers to blocks of the arena in a vmem region.
type ptrTable struct {
	r     *vmem.Region
	slots []*byte
}

// newPtrTable maps a table of n pointers.
//
// Sound because the region is page aligned (so pointer aligned), holds n
// pointers, lives outside the Go heap (the collector never scans it) and is
// only used to hold pointers to arena blocks, which are outside the Go heap
// too, so no Go object is kept alive or missed through it.
func newPtrTable(n int) (*ptrTable, error) {
	r, err := vmem.Reserve(n*8, &vmem.Options{Name: "arenabench pointers"})
	if err != nil {
		return nil, err
	}
	if err := r.Grow(n * 8); err != nil {
		_ = r.Close()
		return nil, err
	}
	slots := unsafe.Slice((**byte)(unsafe.Pointer(unsafe.SliceData(r.Bytes()))), n)
	return &ptrTable{r: r, slots: slots}, nil
}

func (t *ptrTable) set(i int, b []byte) { t.slots[i] = unsafe.SliceData(b) }

// get returns the size-byte block whose pointer is in slot i. Sound because
// the slot holds the start of a live block of that size.
func (t *ptrTable) get(i, size int) []byte { return unsafe.Slice(t.slots[i], size) }

func (t *ptrTable) close() error {
	t.slots = nil
	return t.r.Close()
}
