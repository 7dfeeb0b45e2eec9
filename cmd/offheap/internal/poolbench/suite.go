// Package poolbench is the pool suite of `offheap bench`: the segment pool
// against four other ways to keep 100-byte payloads, on the workloads of
// internal/workload/payload that the pool package's Go benchmarks share.
package poolbench

import (
	"fmt"
	"math"
	"runtime"
	"testing"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/payload"
)

// LiveSizes are commit-live's numbers of live segments.
var LiveSizes = []int{10_000, 100_000, 1_000_000}

// maxReps caps every task's repetitions, so the default run of the suite
// (33 figures) takes about a minute; each Go-benchmark figure is itself an
// average over millions of operations.
const maxReps = 3

// Suite returns the pool suite.
func Suite() bench.Suite {
	return bench.Suite{
		Name: "pool",
		Doc: "Opteryx's MemoryPool benchmark and more, 100-byte payloads, ns/op and allocs/op. " +
			"commit-live: one commit into a store already holding n live segments (b.N commits in batches of 1,000, " +
			"each released untimed, so n to n+1,000 stay live; Opteryx's pool scans its segments and slows with n). " +
			"cycle-copy: commit, copy read, release (Opteryx's hot loop). cycle-latch: commit, latch (zero-copy view), " +
			"unlatch, release; fastcache and freecache have no pinned views and sit it out. " +
			"parallel-p1/-p2: a read-heavy mix (per 64 ops: 62 copy reads of 10,000 shared segments, 1 commit, " +
			"1 release) from GOMAXPROCS goroutines at GOMAXPROCS 1 and 2; ns/op is wall time per op, so a store that " +
			"scales halves it at p2. Impls: offheap (pool.Pool: lock-free reads and latches, O(1) metadata off the heap); " +
			"gomap-heap (a Go map of heap copies: the design Opteryx left); gomap-meta (Go map metadata over one []byte, " +
			"first-fit holes, bump: the obvious Go port of Opteryx's pool); fastcache and freecache (off-heap caches " +
			"doing the same work by key). Stores with a lock use sync.Mutex, as Opteryx uses one lock.",
		Claim: &bench.Claim{
			Seed:      "Opteryx MemoryPool",
			Published: "134,104 commits/s of 100 B (50k commits; 12,839/s before metadata left Python dicts: 10.4x)",
			Answer:    answer,
		},
		Tasks: tasks,
	}
}

// answer gives commit-live's commits per second at the smallest and largest
// numbers of live segments, offheap's and gomap-meta's (Opteryx's design).
func answer(o bench.Outcome) string {
	lo, hi := LiveSizes[0], LiveSizes[len(LiveSizes)-1]
	rate := func(impl string, n int) string {
		v, ok := o.Value("commit-live", impl, int64(n), "ns/op")
		if !ok || v <= 0 {
			return "-"
		}
		return commas(1e9 / v)
	}
	if rate("offheap", lo) == "-" {
		return ""
	}
	return fmt.Sprintf("%s commits/s of 100 B with %s segments live, %s with %s (commit-live; gomap-meta, their design in Go: %s and %s)",
		rate("offheap", lo), commas(float64(lo)), rate("offheap", hi), commas(float64(hi)), rate("gomap-meta", lo), rate("gomap-meta", hi))
}

// commas writes v rounded to an integer with thousands separators.
func commas(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func tasks(cfg bench.Config) ([]bench.Task, error) {
	var ts []bench.Task
	for _, n := range LiveSizes {
		for _, impl := range Impls {
			t := bench.Task{Case: "commit-live", Impl: impl, N: int64(n), MaxReps: maxReps}
			if need := memoryFor(impl, n); cfg.MaxBytes > 0 && need > cfg.MaxBytes {
				t.Skip = fmt.Sprintf("needs about %d MiB, more than the %d MiB allowed (--max-mem)", need>>20, cfg.MaxBytes>>20)
			} else {
				t.Run = func() (bench.Sample, error) { return runLive(cfg, impl, n) }
			}
			ts = append(ts, t)
		}
	}
	for _, impl := range Impls {
		ts = append(ts, bench.Task{Case: "cycle-copy", Impl: impl, MaxReps: maxReps, Run: func() (bench.Sample, error) {
			return runStore(cfg, impl, func(s payload.Store) func(*testing.B) { return payload.CycleCopy(s) })
		}})
	}
	for _, impl := range Impls {
		if impl == "fastcache" || impl == "freecache" {
			continue
		}
		ts = append(ts, bench.Task{Case: "cycle-latch", Impl: impl, MaxReps: maxReps, Run: func() (bench.Sample, error) {
			return runStore(cfg, impl, func(s payload.Store) func(*testing.B) { return payload.CycleLatch(s.(payload.Latcher)) })
		}})
	}
	for _, procs := range []int{1, 2} {
		for _, impl := range Impls {
			ts = append(ts, bench.Task{Case: fmt.Sprintf("parallel-p%d", procs), Impl: impl, MaxReps: maxReps, Run: func() (bench.Sample, error) {
				return runParallel(cfg, impl, procs)
			}})
		}
	}
	return ts, nil
}

func runLive(cfg bench.Config, impl string, n int) (bench.Sample, error) {
	s, err := open(impl, n+payload.LiveBatch)
	if err != nil {
		return bench.Sample{}, err
	}
	l, err := payload.NewLive(s, n)
	if err != nil {
		return bench.Sample{}, err
	}
	defer l.Close()
	return goBench(cfg, l.CommitLive), nil
}

func runStore(cfg bench.Config, impl string, work func(payload.Store) func(*testing.B)) (bench.Sample, error) {
	s, err := open(impl, 0)
	if err != nil {
		return bench.Sample{}, err
	}
	defer s.Close()
	return goBench(cfg, work(s)), nil
}

// runParallel runs the parallel mix with GOMAXPROCS set to procs.
func runParallel(cfg bench.Config, impl string, procs int) (bench.Sample, error) {
	s, err := open(impl, payload.SharedLive)
	if err != nil {
		return bench.Sample{}, err
	}
	sh, err := payload.NewShared(s)
	if err != nil {
		return bench.Sample{}, err
	}
	defer sh.Close()
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
	return goBench(cfg, sh.Parallel), nil
}

// goBench runs f with bench.GoBench and rounds allocs/op to two places:
// what remains below that is the benchmark harness's own few allocations
// spread over millions of operations (go test -benchmem shows it as 0).
func goBench(cfg bench.Config, f func(*testing.B)) bench.Sample {
	s := bench.GoBench(cfg.BenchTime, f)
	for i, fig := range s.Figures {
		if fig.Metric == "allocs/op" {
			s.Figures[i].Value = math.Round(fig.Value*100) / 100
		}
	}
	return s
}
