// Large blocks: requests above MaxSmall are served as spans of whole OS
// pages from a reservation of their own, and their pages go back to the OS
// (MADV_DONTNEED) as soon as they are freed.

package arena

import (
	"math/bits"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/vmem"
)

// largeSpace holds the large blocks: spans (see spanSet) of one
// reservation, made at the first large Alloc. Every free span's pages have
// been given back to the OS, so a span is handed out zeroed without being
// cleared, and Stats' resident figure counts what is really resident. The
// number of live large blocks is bounded by the reservation, not by the
// process's mappings: the reservation is one mapping however it is carved.
// All fields are guarded by Allocator.lmu.
type largeSpace struct {
	region   *vmem.Region   // the pages of the spans
	metaRgn  *vmem.Region   // spanSet.meta
	usedRgn  *vmem.Region   // spanSet.used
	base     unsafe.Pointer // the region's first address
	shift    uint           // log2 of the page size
	spans    spanSet
	releases int // calls that gave a freed span's pages back
	failed   int // such calls that failed (the span stayed allocated)

	// release gives n bytes at offset off back to the OS; a field, so that
	// tests can make it fail.
	release func(off, n int) error
}

// largeGrowth is the least the large reservation's ready prefix grows by.
const largeGrowth = 16 << 20

// newLargeSpace reserves size bytes for large blocks, and the metadata to
// describe them.
func newLargeSpace(name string, size int) (*largeSpace, error) {
	shift := uint(bits.TrailingZeros(uint(osPage)))
	npages := uint32(size >> shift)
	r, err := vmem.Reserve(int(npages)<<shift, &vmem.Options{Name: "arena large " + name})
	if err != nil {
		return nil, err
	}
	mr, err := vmem.Reserve(int(npages)*spanEntrySize, &vmem.Options{Name: "arena large metadata " + name})
	if err != nil {
		_ = r.Close()
		return nil, err
	}
	ur, err := vmem.Reserve(int(npages+63)/64*8, &vmem.Options{Name: "arena large metadata " + name})
	if err != nil {
		_ = r.Close()
		_ = mr.Close()
		return nil, err
	}
	ls := &largeSpace{region: r, metaRgn: mr, usedRgn: ur, base: r.Base(), shift: shift, release: r.Release}
	ls.spans = spanSet{meta: entriesOf(mr, npages), used: wordsOf(ur, npages), npages: npages, grow: ls.grow}
	return ls, nil
}

// grow makes the first n pages ready, and their metadata, at least
// largeGrowth bytes more at a time; it returns how many pages are ready.
func (ls *largeSpace) grow(n uint32) (uint32, error) {
	unit := uint32(largeGrowth >> ls.shift)
	n = min((n+unit-1)/unit*unit, ls.spans.npages)
	if err := ls.region.Grow(int(n) << ls.shift); err != nil {
		return 0, err
	}
	if err := ls.metaRgn.Grow(int(n) * spanEntrySize); err != nil {
		return 0, err
	}
	if err := ls.usedRgn.Grow(int(n+63) / 64 * 8); err != nil {
		return 0, err
	}
	return n, nil
}

// close unmaps the reservation and its metadata.
func (ls *largeSpace) close() error {
	var first error
	for _, r := range []*vmem.Region{ls.region, ls.metaRgn, ls.usedRgn} {
		if err := r.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// allocLarge serves a request above MaxSmall with a span of whole pages.
func (a *Allocator) allocLarge(n int) ([]byte, error) {
	a.lmu.Lock()
	defer a.lmu.Unlock()
	if a.closed.Load() {
		return nil, a.sizeError("alloc", n, ErrClosed)
	}
	ls, err := a.largeSpace()
	if err != nil {
		return nil, a.sizeError("alloc", n, err)
	}
	pages := (uint64(n) + uint64(osPage) - 1) >> ls.shift
	if pages > uint64(ls.spans.npages) {
		return nil, a.sizeError("alloc", n, ErrTooLarge)
	}
	p, reused, ok, err := ls.spans.alloc(uint32(pages))
	switch {
	case err != nil:
		return nil, a.sizeError("alloc", n, err)
	case !ok:
		return nil, a.sizeError("alloc", n, ErrExhausted)
	}
	if reused && check.On { // the checked build protects free spans
		if err := ls.region.Reuse(int(p)<<ls.shift, int(pages)<<ls.shift); err != nil {
			ls.spans.free(p)
			return nil, a.sizeError("alloc", n, err)
		}
	}
	return ls.block(p, n), nil
}

// largeSpace returns the large blocks' space, reserving it at the first
// call. Callers hold a.lmu.
func (a *Allocator) largeSpace() (*largeSpace, error) {
	if a.large == nil {
		ls, err := newLargeSpace(a.name, a.largeReserve)
		if err != nil {
			return nil, err
		}
		a.large = ls
	}
	return a.large, nil
}

// freeLarge frees a large block: its pages go back to the OS, outside the
// lock, then its span is free. If the OS refuses, the block stays allocated
// and the OS's error is returned; Free may be called again.
func (a *Allocator) freeLarge(b []byte) error {
	a.lmu.Lock()
	p, n, err := a.largeBlock(b)
	if err != nil {
		a.lmu.Unlock()
		return a.blockError("free", addrOf(b), err)
	}
	ls := a.large
	ls.spans.meta[p].info |= kindReleasing // a second Free is now ErrDoubleFree
	a.lmu.Unlock()

	err = ls.release(int(p)<<ls.shift, int(n)<<ls.shift)

	a.lmu.Lock()
	defer a.lmu.Unlock()
	ls.spans.meta[p].info &^= kindReleasing
	ls.releases++
	if err != nil {
		ls.failed++
		return a.blockError("free", addrOf(b), err)
	}
	ls.spans.free(p)
	return nil
}

// largeBlock finds the span of the live large block b starts, and its
// length in pages, or says why there is none. Callers hold a.lmu.
func (a *Allocator) largeBlock(b []byte) (uint32, uint32, error) {
	if a.closed.Load() {
		return 0, 0, ErrClosed
	}
	ls := a.large
	if ls == nil {
		return 0, 0, ErrForeign
	}
	off := ls.offsetOf(b)
	p := uint32(off >> ls.shift)
	if off >= uintptr(ls.spans.npages)<<ls.shift || off&(uintptr(osPage)-1) != 0 {
		return 0, 0, ErrForeign
	}
	n, err := ls.spans.usedHead(p)
	if err == nil && cap(b) > int(n)<<ls.shift {
		err = ErrForeign
	}
	return p, n, err
}

// largeWhole validates b as freeLarge would and returns its whole span.
func (a *Allocator) largeWhole(b []byte) ([]byte, error) {
	a.lmu.Lock()
	defer a.lmu.Unlock()
	p, n, err := a.largeBlock(b)
	if err != nil {
		return nil, a.blockError("realloc", addrOf(b), err)
	}
	return a.large.block(p, int(n)<<a.large.shift), nil
}

// largeStats adds the large blocks to s. Callers hold a.lmu.
func (a *Allocator) largeStats(s *Stats) {
	ls := a.large
	if ls == nil {
		return
	}
	inUse := ls.spans.usedPages << ls.shift
	s.LargeBlocks = ls.spans.usedSpans
	s.InUse += inUse
	s.InUseBlocks += ls.spans.usedSpans
	s.Mapped += inUse + ls.metaRgn.Len() + ls.usedRgn.Len()
	for _, r := range []*vmem.Region{ls.region, ls.metaRgn, ls.usedRgn} {
		if n, err := r.Resident(); err == nil {
			s.Resident += n
		}
	}
}
