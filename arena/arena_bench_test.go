package arena_test

import (
	"fmt"
	"testing"

	"github.com/offheap/offheap/arena"
	"github.com/offheap/offheap/internal/workload/churn"
)

// BenchmarkPair times allocating and freeing one block of a mixed size
// (16-256 B). The floor impls run the same loop over an idealised allocator
// (see internal/workload/churn/floor.go): what this harness allows.
func BenchmarkPair(b *testing.B) {
	for _, impl := range churn.Impls {
		b.Run(impl, churn.Pair(impl))
	}
}

// BenchmarkRing times replacing a random one of 100k live blocks of mixed sizes.
func BenchmarkRing(b *testing.B) {
	for _, impl := range churn.Impls {
		b.Run(impl, churn.Ring(impl))
	}
}

// BenchmarkBurst allocates 4M blocks of 64 bytes (256 MiB), frees all (or all
// but every 1000th) and reports RSS in MiB, each run in a fresh child process.
// `offheap bench arena` runs the full 32M-block burst.
func BenchmarkBurst(b *testing.B) {
	for _, cs := range churn.BurstCases {
		for _, impl := range churn.BurstImpls {
			b.Run(cs+"/"+impl, func(b *testing.B) {
				var r churn.BurstResult
				var err error
				for b.Loop() {
					if r, err = churn.Burst(impl, cs, 4<<20); err != nil {
						b.Fatal(err)
					}
				}
				for _, f := range r.Figures() {
					b.ReportMetric(f.Value, f.Metric)
				}
			})
		}
	}
}

// BenchmarkLarge allocates a large block, touches its pages and frees it:
// a span carved from the allocator's reservation, whose pages go back to
// the OS (madvise) at Free.
func BenchmarkLarge(b *testing.B) {
	for _, size := range []int{8 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprint(size>>10, "KiB"), func(b *testing.B) {
			a, err := arena.New(nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				p, err := a.Alloc(size)
				if err != nil {
					b.Fatal(err)
				}
				for i := 0; i < len(p); i += 4096 {
					p[i] = 1
				}
				if err := a.Free(p); err != nil {
					b.Fatal(err)
				}
			}
			if err := a.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
