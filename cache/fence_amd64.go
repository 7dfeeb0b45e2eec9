// Ordering for seqlock readers on amd64.

package cache

// loadFence orders the loads before it ahead of the loads after it. x86
// never reorders loads with loads, so it is empty.
func loadFence() {}
