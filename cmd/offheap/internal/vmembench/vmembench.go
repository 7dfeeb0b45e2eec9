// Package vmembench is the vmem suite of `offheap bench`: how long it takes to
// grow a region holding N bytes to 2N, in place versus by mremap versus by
// copying (the workload is internal/workload/growth, which the vmem package's
// Go benchmarks run too).
package vmembench

import (
	"flag"
	"fmt"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/growth"
)

// sizes are the suite's flags: the smallest and largest N.
type sizes struct{ min, max int64 }

// Suite returns the vmem suite.
func Suite() bench.Suite {
	s := &sizes{}
	return bench.Suite{
		Name: "vmem",
		Doc: "Case grow: seconds to grow a region holding N bytes (every page touched) to 2N. " +
			"inplace: offheap's reserved region made ready further (the address never moves); " +
			"mremap: mremap with MREMAP_MAYMOVE, QuestDB's way (the address may move); " +
			"copy: map 2N, copy, unmap. In-place growth should be flat in N and no slower than mremap.",
		Claim: &bench.Claim{
			Seed:      "QuestDB",
			Published: "grows a column's mapping with mremap, which may move it (no timing published)",
			Answer:    answer,
		},
		Flags: func(fs *flag.FlagSet) {
			fs.Int64Var(&s.min, "vmem-min", 16<<20, "vmem suite: smallest N in bytes")
			fs.Int64Var(&s.max, "vmem-max", 4<<30, "vmem suite: largest N in bytes (--quick caps it at 1 GiB)")
		},
		Tasks: s.tasks,
	}
}

func (s *sizes) tasks(cfg bench.Config) ([]bench.Task, error) {
	hi := s.max
	if cfg.Quick {
		hi = min(hi, 1<<30)
	}
	if s.min <= 0 || hi < s.min {
		return nil, fmt.Errorf("sizes from %d to %d bytes: not a range (--vmem-min, --vmem-max)", s.min, hi)
	}
	var ts []bench.Task
	for n := s.min; n <= hi; n *= 2 {
		for _, impl := range growth.Impls {
			ts = append(ts, task(cfg, impl, n))
		}
	}
	return ts, nil
}

func task(cfg bench.Config, impl string, n int64) bench.Task {
	// Three runs give a stable median here (growth is a few system calls), and
	// keep the default run of every suite under five minutes.
	t := bench.Task{Case: "grow", Impl: impl, N: n, MaxReps: 3}
	peak := n // resident while growing: N, or 2N while copying
	if impl == "copy" {
		peak = 2 * n
	}
	if cfg.MaxBytes > 0 && peak > cfg.MaxBytes {
		t.Skip = fmt.Sprintf("needs %d MiB, more than the %d MiB allowed (--max-mem)", peak>>20, cfg.MaxBytes>>20)
		return t
	}
	t.Run = func() (bench.Sample, error) {
		d, err := growth.GrowOnce(impl, int(n))
		return bench.Sample{Figures: []bench.Figure{{Metric: "seconds", Value: d.Seconds()}}}, err
	}
	return t
}

// answer compares in-place growth with mremap at the largest size both ran.
func answer(o bench.Outcome) string {
	var best string
	for _, r := range o.Results {
		if r.Impl != "inplace" {
			continue
		}
		if m, ok := o.Value("grow", "mremap", r.N, "seconds"); ok && r.Value > 0 {
			best = fmt.Sprintf("growing %d MiB to %d MiB in place takes %.3g s, mremap %.2fx that, and the address never moves",
				r.N>>20, 2*r.N>>20, r.Value, m/r.Value)
		}
	}
	return best
}
