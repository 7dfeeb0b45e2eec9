// The one place vmem hands out addresses: slices of a region and its base
// pointer, which the packages above build their own views on.

package vmem

import "unsafe"

// view returns n bytes at p as a slice.
//
// Sound because p is always the base (or an offset inside) of a mapping this
// package made and has not yet unmapped; such memory is outside the Go heap, so
// the garbage collector neither moves nor frees it, and the slice header's
// pointer is ignored by the collector. n never exceeds the mapped length.
func view(p unsafe.Pointer, n int) []byte {
	return unsafe.Slice((*byte)(p), n)
}

// Base returns the start address of the region's reservation: the same from
// Reserve (or MapFile) to Close, whatever has been made ready, released or
// grown since. It is what Bytes() starts at.
//
// A caller may keep it as an unsafe.Pointer and build views on it. That is
// sound because the reservation is a mapping this package made, outside the Go
// heap: the garbage collector neither moves nor frees it, and a pointer into
// it keeps no Go object alive and is ignored when scanned. The caller must
// only touch bytes of [Base, Base+Len()) that are ready (not released, in the
// checked build), and none after Close, when the address space is unmapped
// and may be reused by any later mapping.
func (r *Region) Base() unsafe.Pointer { return r.base }
