//go:build amd64 && !race

// Ordering on amd64, where the processor keeps it (TSO) and only the
// compiler must be told.

package fence

// Load orders the loads before it ahead of the loads after it. x86 never
// reorders loads with loads, so it is empty.
func Load() {}

// Store orders the stores before it ahead of the stores after it. x86 keeps
// stores in program order, so only the compiler needs telling: a later
// store to the same word, with no load between, would make an earlier one
// dead, and it would drop it (a seqlock's odd number, say). A call it
// cannot see into keeps both.
//
//go:noinline
func Store() {}

// StoreRelease stores v at addr, after every load and store before it. A
// plain store is a release store on amd64: x86 keeps stores in program
// order and never moves one before an earlier load, and the Go compiler
// keeps memory operations in order around a store. It is not a full
// barrier: a later load may complete before the store is visible, so it
// must not be one half of a Dekker-style handshake.
func StoreRelease(addr *uint64, v uint64) { *addr = v }
