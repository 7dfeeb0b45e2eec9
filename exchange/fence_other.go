//go:build !linux || !amd64 || race

// The asymmetric fence elsewhere: not needed, release stores are full barriers.

package exchange

// asymmetric is false: storeRelease uses sync/atomic, whose stores and loads
// are sequentially consistent, so parking needs no extra fence.
const asymmetric = false

// fence is a no-op here: see storeRelease.
func fence() {}
