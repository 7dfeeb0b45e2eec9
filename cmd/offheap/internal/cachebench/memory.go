// The memory case: what n entries cost the Go heap and its collector, and,
// for offheap, RSS against the budget and after a Resize to a tenth. Each
// figure comes from a fresh child process (this binary, run again with
// memoryEnv set), so no other task's heap or mappings blur it.

package cachebench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	theine "github.com/Yiling-J/theine-go"
	"github.com/maypok86/otter/v2"

	"github.com/offheap/offheap/cache"
	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/lookup"
	"github.com/offheap/offheap/vmem"
)

// MemoryImpls are the implementations of the memory case: offheap, the two
// best-hit-ratio caches (which keep every entry on the Go heap), and an
// empty process, the floor for GC time.
var MemoryImpls = []string{"offheap", "otter", "theine", "empty"}

// Entries in the memory case, by default and with --quick.
const (
	memoryEntries      = 10_000_000
	memoryEntriesQuick = 300_000
	// gcCycles is how many forced collections the GC time is the median of.
	gcCycles = 20
	// shrinkWait is how long after a Resize RSS is read.
	shrinkWait = 100 * time.Millisecond
)

// memoryEnv names the environment variable that makes this binary measure
// one memory figure set in a child process: "impl,n".
const memoryEnv = "OFFHEAP_CACHE_MEMORY"

func init() {
	if spec := os.Getenv(memoryEnv); spec != "" {
		os.Exit(memoryChild(spec))
	}
}

// memoryResult is what one child measured; the RSS figures are offheap's only.
type memoryResult struct {
	HeapBytesPerEntry float64 `json:"heap_bytes_per_entry"`
	GCCPUMsPerCycle   float64 `json:"gc_cpu_ms_per_cycle"`
	RSSOverBudget     float64 `json:"rss_over_budget,omitempty"`
	IndexOverBudget   float64 `json:"index_over_budget,omitempty"`
	RSSAfterShrinkPct float64 `json:"rss_after_shrink_pct,omitempty"`
}

func (s *settings) memoryTasks(cfg bench.Config) []bench.Task {
	n := s.memoryEntries
	if cfg.Quick {
		n = min(n, memoryEntriesQuick)
	}
	var ts []bench.Task
	for _, impl := range MemoryImpls {
		t := bench.Task{Case: "memory", Impl: impl, N: int64(n), MaxReps: memoryReps(impl)}
		if need := memoryNeed(impl, n); cfg.MaxBytes > 0 && need > cfg.MaxBytes {
			t.Skip = fmt.Sprintf("needs about %d MiB, more than the %d MiB allowed (--max-mem)", need>>20, cfg.MaxBytes>>20)
		} else {
			t.Run = func() (bench.Sample, error) { return runMemory(impl, n) }
		}
		ts = append(ts, t)
	}
	return ts
}

// memoryReps caps the child processes of impl's memory figures: five for
// offheap and the empty process, whose GC time per cycle is a tenth of a
// millisecond that the machine's other tasks can double in one child of
// several (offheap, alternating with the empty process, 2026-12-02: 0.093,
// 0.114, 0.118, 0.120, 0.154, 0.228, 0.288 ms), so the report's median
// needs several; one for otter and theine, whose twenty collections of 10M
// entries take minutes.
func memoryReps(impl string) int {
	if impl == "offheap" || impl == "empty" {
		return 5
	}
	return 1
}

// memoryNeed estimates the memory n entries take: offheap's segments and
// metadata; a Go-heap cache's nodes, keys and values, twice over for the
// collector's headroom.
func memoryNeed(impl string, n int) int64 {
	switch impl {
	case "offheap":
		return int64(n) * (offheapEntry + 128)
	case "empty":
		return 64 << 20
	}
	return int64(n) * 2 * (lookup.KeySize + lookup.ValueSize + 160)
}

// runMemory measures impl with n entries in a child process.
func runMemory(impl string, n int) (bench.Sample, error) {
	exe, err := os.Executable()
	if err != nil {
		return bench.Sample{}, fmt.Errorf("memory %s: find this binary: %w", impl, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d", memoryEnv, impl, n))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return bench.Sample{}, fmt.Errorf("memory %s in a child: %w: %s", impl, err, strings.TrimSpace(errOut.String()))
	}
	var r memoryResult
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return bench.Sample{}, fmt.Errorf("memory %s: read the child's result: %w", impl, err)
	}
	smp := bench.Sample{Figures: []bench.Figure{{Metric: "gc_cpu_ms_per_cycle", Value: r.GCCPUMsPerCycle}}}
	if impl != "empty" {
		smp.Figures = append(smp.Figures, bench.Figure{Metric: "heap_bytes_per_entry", Value: r.HeapBytesPerEntry})
	}
	if impl == "offheap" {
		smp.Figures = append(smp.Figures,
			bench.Figure{Metric: "rss_over_budget", Value: r.RSSOverBudget},
			bench.Figure{Metric: "index_over_budget", Value: r.IndexOverBudget},
			bench.Figure{Metric: "rss_after_shrink_pct", Value: r.RSSAfterShrinkPct})
	}
	return smp, nil
}

// memoryChild runs the measurement spec names ("impl,n") and prints it.
func memoryChild(spec string) int {
	impl, ns, _ := strings.Cut(spec, ",")
	n, err := strconv.Atoi(ns)
	if err == nil {
		var r memoryResult
		if r, err = memoryHere(impl, n); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(r)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s=%q: %v\n", memoryEnv, spec, err)
		return 1
	}
	return 0
}

// memoryHere fills impl with n entries of 100-byte values in this process
// and measures: the Go heap's growth per entry, and the collector's CPU per
// forced cycle, after two collections; for offheap, RSS grown over the
// budget, the index's share of the budget, and RSS grown 100 ms after a
// Resize to a tenth, as a percentage of RSS grown at the peak.
func memoryHere(impl string, n int) (memoryResult, error) {
	var r memoryResult
	settle()
	heap0, rss0 := heapBytes(), rssBytes()
	var keep any
	var c *cache.Cache
	switch impl {
	case "offheap":
		var err error
		if c, err = cache.New(n*offheapEntry, nil); err != nil {
			return r, err
		}
		defer c.Close()
		if err := fill(n, func(k, v []byte) error { return c.Set(k, v) }); err != nil {
			return r, err
		}
	case "otter":
		o := otter.Must(&otter.Options[string, []byte]{MaximumSize: n})
		_ = fill(n, func(k, v []byte) error { o.Set(string(k), bytes.Clone(v)); return nil })
		keep = o
	case "theine":
		t, err := theine.NewBuilder[string, []byte](int64(n)).Build()
		if err != nil {
			return r, err
		}
		_ = fill(n, func(k, v []byte) error { t.Set(string(k), bytes.Clone(v), 1); return nil })
		keep = t
	case "empty":
	default:
		return r, fmt.Errorf("unknown impl %q", impl)
	}
	settle()
	r.HeapBytesPerEntry = float64(heapBytes()-heap0) / float64(n)
	r.GCCPUMsPerCycle = gcCPUPerCycle()
	if c != nil {
		peak := rssBytes() - rss0
		st := c.Stats()
		r.RSSOverBudget = float64(peak) / float64(st.Budget)
		r.IndexOverBudget = float64(st.MetaBytes) / float64(st.Budget)
		if err := c.Resize(st.Budget / 10); err != nil {
			return r, err
		}
		time.Sleep(shrinkWait)
		r.RSSAfterShrinkPct = 100 * float64(rssBytes()-rss0) / float64(peak)
	}
	runtime.KeepAlive(keep)
	return r, nil
}

// fill sets n entries: 16-byte keys, 100-byte values, each Set given fresh
// bytes to keep or copy.
func fill(n int, set func(k, v []byte) error) error {
	k := make([]byte, lookup.KeySize)
	v := lookup.Value()
	for i := range n {
		k = strconv.AppendInt(append(k[:0], 'k'), int64(i), 10)
		for len(k) < lookup.KeySize {
			k = append(k, '.')
		}
		if err := set(k, v); err != nil && !errors.Is(err, cache.ErrRejected) {
			return fmt.Errorf("entry %d: %w", i, err)
		}
	}
	return nil
}

// settle runs two collections, so the heap holds only what is reachable.
func settle() {
	runtime.GC()
	runtime.GC()
}

const (
	heapMetric   = "/memory/classes/heap/objects:bytes"
	gcMetric     = "/cpu/classes/gc/total:cpu-seconds"
	gcIdleMetric = "/cpu/classes/gc/mark/idle:cpu-seconds"
)

func readMetric(name string) metrics.Value {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value
}

// heapBytes returns the bytes of live and unswept objects on the Go heap.
func heapBytes() int64 { return int64(readMetric(heapMetric).Uint64()) }

// gcCPUPerCycle forces gcCycles collections and returns the median GC CPU
// time of one, in milliseconds: the compulsory GC CPU, that is the total
// less the idle mark workers, as runtime/metrics documents the idle
// workers' figure (they run on Ps that had nothing else to do, and take
// whatever CPU the machine's other tasks leave). The median, not the mean:
// one cycle in twenty can cost twice the rest on a shared machine.
func gcCPUPerCycle() float64 {
	per := make([]float64, gcCycles)
	for i := range per {
		before := gcCompulsory()
		runtime.GC()
		per[i] = (gcCompulsory() - before) * 1000
	}
	return bench.Median(per)
}

// gcCompulsory returns the GC CPU seconds so far, less the idle mark
// workers'.
func gcCompulsory() float64 {
	return readMetric(gcMetric).Float64() - readMetric(gcIdleMetric).Float64()
}

func rssBytes() int64 {
	n, err := vmem.RSS()
	if err != nil {
		return 0
	}
	return int64(n)
}
