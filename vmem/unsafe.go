// The one place vmem turns addresses into slices.

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
