//go:build !amd64 || race

// Release stores elsewhere, and under the race detector: sync/atomic's.

package exchange

import "sync/atomic"

// storeRelease stores v at addr so that every write before it is visible to
// whoever loads v. sync/atomic's Store is sequentially consistent with its
// Load (STLR/LDAR on arm64), which is all the parking protocol needs; under
// the race detector it also shows the detector the hand-off's
// happens-before edges.
func storeRelease(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }

// storeRelease32 is storeRelease for a 32-bit word.
func storeRelease32(addr *uint32, v uint32) { atomic.StoreUint32(addr, v) }
