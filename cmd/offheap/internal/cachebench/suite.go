// Package cachebench is the cache suite of `offheap bench`: the read cache
// against the Go caches a database or query engine would otherwise use, on
// speed (internal/workload/lookup, shared with the cache package's Go
// benchmarks), memory (what entries cost the Go heap and its collector, RSS
// against the budget and after shrinking) and hit ratio.
package cachebench

import (
	"flag"
	"fmt"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
)

// settings are the suite's flag values.
type settings struct {
	entries       int         // held in the speed cases
	memoryEntries int         // held in the memory case
	hit           hitSettings // the hit-ratio cases' (hitratio.go)
}

// Suite returns the cache suite.
func Suite() bench.Suite {
	s := &settings{}
	return bench.Suite{
		Name: "cache",
		Doc: "A read cache of byte keys and values, offheap against otter v2, theine, ristretto v2, golang-lru v2 " +
			"(lru, 2q, arc), fastcache and freecache. Speed, 100-byte values under 16-byte keys drawn from a zipf " +
			"distribution (s=1.01), ns/op and allocs/op: get (copy Get, every key held), get-pinned (zero-copy read: " +
			"offheap's Pin, read, Release; the others' Get of the value they keep, freecache's GetFn; fastcache has none), " +
			"set-evict (Set of a key not held in a cache at capacity), mix-p1/-p2 (90% Get, 10% Set, from GOMAXPROCS " +
			"goroutines at GOMAXPROCS 1 and 2; ns/op is wall time per op). memory, n entries of 100 bytes, each in a " +
			"fresh child process: heap_bytes_per_entry (Go heap growth per entry after two collections) and " +
			"gc_cpu_ms_per_cycle (compulsory GC CPU of a forced collection, runtime/metrics' total less its idle mark workers, the median of 20), for offheap, otter, theine and an " +
			"empty process; for offheap also rss_over_budget (RSS grown / budget), index_over_budget (all the off-heap " +
			"metadata, Stats.MetaBytes: index, entry tables, policy, pool slot table / budget) and " +
			"rss_after_shrink_pct (RSS grown 100 ms after Resize to a tenth, as a percentage of RSS grown at the peak)." + hitDoc,
		Flags:   s.flags,
		Tasks:   s.tasks,
		Summary: hitSummary,
		Claim: &bench.Claim{
			Seed: "Opteryx BufferPool; otter, theine",
			Published: "Opteryx's BufferPool evicts LRU-K(2) over its MemoryPool (no hit ratio published); otter v2 and " +
				"theine have Go's best hit ratios (W-TinyLFU) with every entry on the Go heap: 31-46 ms of GC scan at 1M entries",
			Answer: answer,
		},
	}
}

// answer gives the mean hit ratios and the Go heap each entry costs.
func answer(o bench.Outcome) string {
	val := func(c, impl, metric string) (float64, int64, bool) {
		for _, r := range o.Results {
			if r.Case == c && r.Impl == impl && r.Metric == metric {
				return r.Value, r.N, true
			}
		}
		return 0, 0, false
	}
	mine, points, ok := val(caseMean, "offheap", hitMetric)
	if !ok {
		return ""
	}
	s := fmt.Sprintf("mean hit ratio over %d trace points %.2f%%", points, mine)
	for _, impl := range []string{"otter", "theine", "opteryx-lruk", "lru"} {
		if v, _, ok := val(caseMean, impl, hitMetric); ok {
			s += fmt.Sprintf(", %s %.2f%%", impl, v)
		}
	}
	if v, n, ok := val("memory", "offheap", "heap_bytes_per_entry"); ok {
		s += fmt.Sprintf("; Go heap per entry at %d entries %.1f B", n, v)
		if w, _, ok := val("memory", "otter", "heap_bytes_per_entry"); ok {
			s += fmt.Sprintf(" (otter %.0f B)", w)
		}
	}
	return s
}

func (s *settings) flags(fs *flag.FlagSet) {
	fs.IntVar(&s.entries, "cache-entries", speedEntries, "cache suite: entries held in the speed cases (--quick caps it)")
	fs.IntVar(&s.memoryEntries, "cache-memory-entries", memoryEntries, "cache suite: entries in the memory case (--quick caps it)")
	s.hit.flags(fs)
}

func (s *settings) tasks(cfg bench.Config) ([]bench.Task, error) {
	switch {
	case s.entries < 16:
		return nil, fmt.Errorf("%d entries: want at least 16 (--cache-entries)", s.entries)
	case s.memoryEntries < 16:
		return nil, fmt.Errorf("%d entries: want at least 16 (--cache-memory-entries)", s.memoryEntries)
	}
	ts := s.speedTasks(cfg)
	ts = append(ts, s.memoryTasks(cfg)...)
	hit, err := s.hit.tasks(cfg)
	return append(ts, hit...), err
}
