//go:build !amd64 || race

// The lock's release store elsewhere, and under the race detector.

package pool

import "sync/atomic"

// storeRelease stores v at addr with (at least) release ordering; on arm64
// atomic.Store is STLR, itself a release store.
func storeRelease(addr *uint64, v uint64) { atomic.StoreUint64(addr, v) }
