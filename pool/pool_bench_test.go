package pool_test

import (
	"fmt"
	"testing"

	"github.com/offheap/offheap/internal/workload/payload"
)

// The pool suite's workloads against the pool and the Go-map stores; `offheap
// bench pool` runs the same functions, adding third-party caches. Run the
// parallel case at both sizes with -cpu 1,2.

// BenchmarkCommitLive times one commit of 100 bytes into a store already
// holding n live segments.
func BenchmarkCommitLive(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		for _, impl := range payload.Impls {
			var l *payload.Live // filled once, untimed, and reused by every run of the sub-benchmark
			b.Run(fmt.Sprintf("n=%d/%s", n, impl), func(b *testing.B) {
				if l == nil {
					b.StopTimer()
					l = newLive(b, impl, n)
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

func newLive(b *testing.B, impl string, n int) *payload.Live {
	s, err := payload.Open(impl, n+payload.LiveBatch)
	if err != nil {
		b.Fatal(err)
	}
	l, err := payload.NewLive(s, n)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// BenchmarkCycleCopy times commit, copy read and release of 100 bytes.
func BenchmarkCycleCopy(b *testing.B) {
	for _, impl := range payload.Impls {
		b.Run(impl, func(b *testing.B) {
			s, err := payload.Open(impl, 0)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload.CycleCopy(s)(b)
		})
	}
}

// BenchmarkCycleLatch times commit, latch, unlatch and release of 100 bytes.
func BenchmarkCycleLatch(b *testing.B) {
	for _, impl := range payload.Impls {
		s, err := payload.Open(impl, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(impl, payload.CycleLatch(s.(payload.Latcher)))
		_ = s.Close()
	}
}

// BenchmarkParallel runs the read-heavy mix from GOMAXPROCS goroutines.
func BenchmarkParallel(b *testing.B) { parallel(b, (*payload.Shared).Parallel) }

// BenchmarkParallelReads runs copy reads alone from GOMAXPROCS goroutines.
func BenchmarkParallelReads(b *testing.B) { parallel(b, (*payload.Shared).ParallelReads) }

func parallel(b *testing.B, work func(*payload.Shared, *testing.B)) {
	for _, impl := range payload.Impls {
		var sh *payload.Shared
		b.Run(impl, func(b *testing.B) {
			if sh == nil {
				b.StopTimer()
				s, err := payload.Open(impl, payload.SharedLive)
				if err != nil {
					b.Fatal(err)
				}
				if sh, err = payload.NewShared(s); err != nil {
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
