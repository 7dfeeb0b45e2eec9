package pool_test

import (
	"fmt"
	"testing"

	"github.com/offheap/offheap/internal/bench/poolbench"
)

// The pool suite's workloads against every implementation; `offheap bench
// pool` runs the same functions. Run the parallel case at both sizes with
// -cpu 1,2.

// BenchmarkCommitLive times one commit of 100 bytes into a store already
// holding n live segments.
func BenchmarkCommitLive(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		for _, impl := range poolbench.Impls {
			var l *poolbench.Live // filled once, untimed, and reused by every run of the sub-benchmark
			b.Run(fmt.Sprintf("n=%d/%s", n, impl), func(b *testing.B) {
				if l == nil {
					b.StopTimer()
					var err error
					if l, err = poolbench.NewLive(impl, n); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
				}
				l.CommitLive(b)
			})
			if l != nil {
				_ = l.Close()
			}
		}
	}
}

// BenchmarkCycleCopy times commit, copy read and release of 100 bytes.
func BenchmarkCycleCopy(b *testing.B) {
	for _, impl := range poolbench.Impls {
		b.Run(impl, func(b *testing.B) {
			s, err := poolbench.Open(impl, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			poolbench.CycleCopy(s)(b)
		})
	}
}

// BenchmarkCycleLatch times commit, latch, unlatch and release of 100 bytes,
// for the stores that have pinned views.
func BenchmarkCycleLatch(b *testing.B) {
	for _, impl := range poolbench.Impls {
		s, err := poolbench.Open(impl, 0)
		if err != nil {
			b.Fatal(err)
		}
		if l, ok := s.(poolbench.Latcher); ok {
			b.Run(impl, poolbench.CycleLatch(l))
		}
		_ = s.Close()
	}
}

// BenchmarkParallel runs the read-heavy mix from GOMAXPROCS goroutines.
func BenchmarkParallel(b *testing.B) { parallel(b, (*poolbench.Shared).Parallel) }

// BenchmarkParallelReads runs copy reads alone from GOMAXPROCS goroutines.
func BenchmarkParallelReads(b *testing.B) { parallel(b, (*poolbench.Shared).ParallelReads) }

func parallel(b *testing.B, work func(*poolbench.Shared, *testing.B)) {
	for _, impl := range poolbench.Impls {
		var sh *poolbench.Shared
		b.Run(impl, func(b *testing.B) {
			if sh == nil {
				b.StopTimer()
				var err error
				if sh, err = poolbench.NewShared(impl); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			work(sh, b)
		})
		if sh != nil {
			_ = sh.Close()
		}
	}
}
