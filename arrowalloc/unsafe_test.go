// The one place the tests read memory through a raw address, as Arrow's
// typed accessors do.

package arrowalloc

import "unsafe"

// peek reads the byte i bytes after b's first one, past b's length if asked:
// the access a buggy Arrow accessor makes through an unsafe pointer.
//
// Sound only where the tests call it: on a Checked allocator's memory, which
// is mapped for the allocator's life, so the read either succeeds or faults
// (and the test runs it under Run, which turns the fault into an error).
func peek(b []byte, i int) byte {
	return *(*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), i))
}
