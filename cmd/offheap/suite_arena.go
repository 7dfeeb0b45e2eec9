// The arena suite: burst RSS, pair and ring timings of the arena allocator
// against the Go heap.

package main

import _ "github.com/offheap/offheap/internal/bench/arenabench"
