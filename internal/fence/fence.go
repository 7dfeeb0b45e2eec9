// Package fence orders the memory accesses of offheap's lock-free readers
// and of the writers they race with, where sync/atomic's sequentially
// consistent operations would cost more than the order needed: on amd64
// Store compiles to XCHG, a full barrier that costs as much as a
// compare-and-swap, while x86's own ordering (TSO: loads are not reordered
// with loads, nor stores with stores) already gives what a seqlock or a
// release needs. Here, on amd64, Load and Store are empty and StoreRelease
// is a plain store; elsewhere, and under the race detector (which must see
// the happens-before edges), they are sync/atomic's.
//
// The writers that use StoreRelease hold a lock (the pool's or the cache's),
// or own the word (a P's counters, stored only by the goroutine pinned to
// that P), so no two store to one word at once; readers load with
// sync/atomic. Nor does any lock-free party compare-and-swap a word while a
// writer may StoreRelease it: the store would undo the swap (the cache
// stores an entry's word only while it is free or busy, which no pin CASes).
package fence
