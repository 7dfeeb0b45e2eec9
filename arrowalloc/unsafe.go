// The one place arrowalloc turns a slice into an address.

package arrowalloc

import "unsafe"

// addr returns the address of b's first byte (of its backing array, even when
// b is empty).
//
// Sound because the address is only compared and subtracted, never turned back
// into a pointer: a Checked allocator uses it to find the buffer a slice
// starts (its own memory is outside the Go heap, so the address is stable), and
// a slice from anywhere else only fails that lookup.
func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
