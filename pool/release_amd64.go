//go:build !race

// The lock's release store on amd64.

package pool

import "unsafe"

// storeRelease stores v at addr with release ordering.
//
// On amd64 a plain store is a release store: x86 keeps stores in program
// order and never moves them before earlier loads (TSO), and the Go compiler
// keeps memory operations in order around a store. sync/atomic's Store would
// compile to XCHG, a full barrier that costs as much as the lock's CAS on
// every unlock. Under the race detector the atomic version is used instead,
// so the detector sees the lock's happens-before edges.
func storeRelease(addr *uint64, v uint64) { *(*uint64)(unsafe.Pointer(addr)) = v }
