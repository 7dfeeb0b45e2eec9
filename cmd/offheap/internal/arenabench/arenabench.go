// Package arenabench is the arena suite of `offheap bench`: the burst cases
// (RSS while a burst of small blocks is allocated and freed, measured in a
// fresh child process per run) and the pair and ring cases (ns per
// operation for mixed sizes of 16-256 bytes), offheap's arena against the Go
// heap, on the workloads of internal/workload/churn that the arena package's
// Go benchmarks share.
package arenabench

import (
	"flag"
	"fmt"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/churn"
)

// bursts are the suite's flags: blocks per burst, normally and with --quick.
type bursts struct{ n, quick int }

// Suite returns the arena suite.
func Suite() bench.Suite {
	b := &bursts{}
	return bench.Suite{
		Name: "arena",
		Doc: "Cases burst-free-all and burst-survivors: allocate N 64-byte blocks (32M, 2 GiB; --quick 2M), " +
			"then free them all, or all but every 1000th; RSS in MiB before (base), at the peak, right after the " +
			"last free, 1 s and 5 s later, each run in a fresh child process, with RSS plotted over time. offheap: " +
			"arena.Allocator; goheap: make([]byte, 64), references dropped, runtime.GC(). Cases pair (allocate and " +
			"free one block) and ring (100k blocks live, free a random one and allocate its replacement), mixed " +
			"sizes 16-256 B, ns/op: offheap (the shared Allocator), offheap-cache (the single-owner Cache handle), " +
			"goheap (make, with the garbage collector's cost included); floor and floor-nozero run the same loops " +
			"over an idealised allocator (a stack of blocks per class, no checks, locks or metadata), zeroing as " +
			"arena does or not (as malloc does): what the harness and the machine allow.",
		Claim: &bench.Claim{
			Seed: "CPython (pymalloc)",
			Published: "keeps 1974 MiB after 32M 64-byte objects (2 GiB) were freed except 1 in 1000 " +
				"(measured on this project's machine; Evan Jones: a bursty program held 2 GB for hours)",
			Answer: answer,
		},
		Flags: func(fs *flag.FlagSet) {
			fs.IntVar(&b.n, "arena-burst", 32<<20, "arena suite: blocks of the burst cases")
			fs.IntVar(&b.quick, "arena-burst-quick", 2<<20, "arena suite: blocks of the burst cases with --quick")
		},
		Tasks: b.tasks,
	}
}

func (b *bursts) tasks(cfg bench.Config) ([]bench.Task, error) {
	n := b.n
	reps := 3
	if cfg.Quick {
		n, reps = b.quick, 1
	}
	if n < 1000 {
		return nil, fmt.Errorf("burst of %d blocks: fewer than 1000 (--arena-burst, --arena-burst-quick)", n)
	}
	var ts []bench.Task
	for _, cs := range []string{"pair", "ring"} {
		for _, impl := range churn.Impls {
			ts = append(ts, opTask(cfg, cs, impl))
		}
	}
	for _, cs := range churn.BurstCases {
		for _, impl := range churn.BurstImpls {
			ts = append(ts, burstTask(cfg, cs, impl, n, reps))
		}
	}
	return ts, nil
}

// burstNeeds estimates the memory a burst of n blocks takes: the blocks and
// the table of references, plus a quarter for the Go heap's collector.
func burstNeeds(impl string, n int) int64 {
	if impl == "goheap" {
		return int64(n) * (churn.BurstBlock + 24) * 5 / 4
	}
	return int64(n) * (churn.BurstBlock + 8) * 21 / 20
}

func burstTask(cfg bench.Config, cs, impl string, n, reps int) bench.Task {
	t := bench.Task{Case: cs, Impl: impl, N: int64(n), MaxReps: reps}
	if need := burstNeeds(impl, n); cfg.MaxBytes > 0 && need > cfg.MaxBytes {
		t.Skip = fmt.Sprintf("needs about %d MiB, more than the %d MiB allowed (--max-mem)", need>>20, cfg.MaxBytes>>20)
		return t
	}
	t.Run = func() (bench.Sample, error) {
		r, err := churn.Burst(impl, cs, n)
		return sample(r), err
	}
	return t
}

// sample is a burst's result in the harness's terms.
func sample(r churn.BurstResult) bench.Sample {
	s := bench.Sample{SeriesMetric: "rss_mib"}
	for _, f := range r.Figures() {
		s.Figures = append(s.Figures, bench.Figure(f))
	}
	for _, p := range r.Series {
		s.Series = append(s.Series, bench.Point(p))
	}
	return s
}

func opTask(cfg bench.Config, cs, impl string) bench.Task {
	n := int64(0)
	f := churn.Pair(impl)
	if cs == "ring" {
		n, f = churn.RingLive, churn.Ring(impl)
	}
	return bench.Task{Case: cs, Impl: impl, N: n, Run: func() (bench.Sample, error) {
		return bench.GoBench(cfg.BenchTime, f), nil
	}}
}

// answer gives the RSS burst-survivors leaves right after the last free and
// 5 s later, offheap's and goheap's.
func answer(o bench.Outcome) string {
	for _, r := range o.Results {
		if r.Case != "burst-survivors" || r.Impl != "offheap" || r.Metric != "rss_after_free_mib" {
			continue
		}
		later, _ := o.Value(r.Case, "offheap", r.N, "rss_after_5s_mib")
		goheap, ok := o.Value(r.Case, "goheap", r.N, "rss_after_5s_mib")
		s := fmt.Sprintf("after %s 64-byte blocks were freed except 1 in 1000, offheap keeps %.0f MiB at once, %.0f MiB 5 s later",
			blocks(r.N), r.Value, later)
		if ok {
			s += fmt.Sprintf(" (goheap: %.0f MiB)", goheap)
		}
		return s
	}
	return ""
}

// blocks writes a number of blocks: 32M for 32<<20.
func blocks(n int64) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%dM", n>>20)
	}
	return fmt.Sprint(n)
}
