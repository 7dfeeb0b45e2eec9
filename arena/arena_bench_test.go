package arena_test

import (
	"testing"

	"github.com/offheap/offheap/internal/bench/arenabench"
)

// BenchmarkPair times allocating and freeing one block of a mixed size (16-256 B).
func BenchmarkPair(b *testing.B) {
	for _, impl := range arenabench.Impls {
		b.Run(impl, arenabench.Pair(impl))
	}
}

// BenchmarkRing times replacing a random one of 100k live blocks of mixed sizes.
func BenchmarkRing(b *testing.B) {
	for _, impl := range arenabench.Impls {
		b.Run(impl, arenabench.Ring(impl))
	}
}
