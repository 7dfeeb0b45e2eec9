//go:build amd64 && !race

// Release stores on amd64: a plain store, when the asymmetric fence backs it.

package exchange

import (
	"sync/atomic"
	"unsafe"
)

// storeRelease stores v at addr so that every write before it is visible to
// whoever loads v.
//
// On amd64 a plain store already has release ordering: x86 keeps stores in
// program order (TSO) and the Go compiler keeps memory operations in order
// around a store. sync/atomic's Store would compile to XCHG, a full barrier
// that costs as much as a whole hand-off. A plain store is not a full
// barrier, though: a later load may complete before it is visible. The
// hand-off needs that order only where one side is about to park, and the
// parking side restores it with an asymmetric fence (see fence); where that
// fence is not available, every release store is a full barrier instead.
func storeRelease(addr *uint64, v uint64) {
	if asymmetric {
		*(*uint64)(unsafe.Pointer(addr)) = v
		return
	}
	atomic.StoreUint64(addr, v)
}

// storeRelease32 is storeRelease for a 32-bit word.
func storeRelease32(addr *uint32, v uint32) {
	if asymmetric {
		*(*uint32)(unsafe.Pointer(addr)) = v
		return
	}
	atomic.StoreUint32(addr, v)
}
