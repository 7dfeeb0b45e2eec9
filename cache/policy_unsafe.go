// The few places the policy turns its vmem regions into typed tables, each
// with why it is sound.

package cache

import (
	"unsafe"

	"github.com/offheap/offheap/vmem"
)

// policyTable returns a table of n values of type T laid over the whole
// reservation of r, whose first page (at least) is ready.
//
// Sound because every T used here (pentry, ghostBucket, sketch words, pcount)
// holds no Go pointers, so it may live outside the Go heap and the collector
// has nothing to find in it; r's base is page aligned (enough for any of
// them) and never moves until Close; r reserves at least n*sizeof(T) bytes;
// and only the ready prefix of the table is ever touched, which the policy
// ensures by growing r before publishing a larger size.
func policyTable[T any](r *vmem.Region, n int) []T {
	base := unsafe.Pointer(unsafe.SliceData(r.Bytes()))
	return unsafe.Slice((*T)(base), n)
}

// sizeOf returns the size of T in bytes, for reserving a region for n of them.
func sizeOf[T any]() int {
	var t T
	return int(unsafe.Sizeof(t))
}
