package exchange_test

import (
	"fmt"
	"testing"

	"github.com/offheap/offheap/internal/workload/handoff"
)

// The exchange suite's hand-off cases against every baseline; `offheap
// bench exchange` runs the same functions (internal/workload/handoff).
// Producers fill every morsel in place, consumers read every byte of it;
// ns/op is wall time per morsel.

// BenchmarkHandoff hands 64-byte morsels from one producer to one
// consumer, one at a time and in batches of 64.
func BenchmarkHandoff(b *testing.B) {
	for _, batch := range []int{1, 64} {
		for _, impl := range handoff.Impls {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, impl), bench(impl, 1, 1, 64, batch))
		}
	}
}

// BenchmarkMPMC hands 64-byte morsels from two producers to two consumers.
func BenchmarkMPMC(b *testing.B) {
	for _, impl := range handoff.Impls {
		b.Run(impl, bench(impl, 2, 2, 64, 1))
	}
}

// BenchmarkSize hands morsels of 1 KiB to 4 MiB from one producer to one
// consumer; MB/s is the payload delivered.
func BenchmarkSize(b *testing.B) {
	for _, n := range []int{1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20} {
		for _, impl := range handoff.Impls {
			b.Run(fmt.Sprintf("n=%d/%s", n, impl), bench(impl, 1, 1, n, 1))
		}
	}
}

func bench(impl string, np, nc, size, batch int) func(*testing.B) {
	f, err := handoff.Handoff(impl, np, nc, size, batch)
	if err != nil {
		return func(b *testing.B) { b.Fatal(err) }
	}
	return f
}
