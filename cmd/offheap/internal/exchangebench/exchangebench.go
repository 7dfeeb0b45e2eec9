// Package exchangebench is the exchange suite of `offheap bench`: the
// morsel exchange against a channel of pool refs, a channel of heap copies,
// a disruptor-style ring and Arrow IPC over a pipe, on the workloads of
// internal/workload/handoff that the exchange package's Go benchmarks share.
package exchangebench

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/handoff"
)

// Impls are the suite's implementations: the workload package's and arrow-ipc.
var Impls = append(append([]string(nil), handoff.Impls...), "arrow-ipc")

// The cases' sizes.
const (
	smallMorsel  = 64 // handoff, handoff-batch, mpmc
	batchLen     = 64 // handoff-batch
	bigMorsel    = 64 << 10
	slowBudget   = 2 << 20 // slow-consumer
	cancelBudget = 4 << 20
	pipeBudget   = 8 << 20
	pipeRows     = bigMorsel / handoff.RowSize
)

// Sizes are the size case's morsel sizes.
var Sizes = []int{1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20}

// maxReps caps the repetitions of the Go-benchmark cases: each figure is
// already an average over many hand-offs.
const maxReps = 3

// Suite returns the exchange suite.
func Suite() bench.Suite {
	return bench.Suite{
		Name: "exchange",
		Doc: "Morsels handed from producer goroutines to consumer goroutines; the producer fills each morsel in place, " +
			"the consumer reads every byte of it. handoff: one producer, one consumer, 64-byte morsels, ns/op per morsel; " +
			"handoff-batch: the same, 64 morsels per call (SendBatch/RecvBatch; a slice of refs or copies per channel " +
			"operation; 64 ring entries per claim; 64 rows per record batch); mpmc: two producers, two consumers, " +
			"ns/op per morsel; size: one producer, one consumer, morsels of n bytes, gb_per_s of payload delivered; " +
			"slow-consumer: 64 KiB morsels to a consumer ten times slower than its producer, inflight_over_budget = peak " +
			"bytes in flight / (the exchange's 2 MiB budget + one morsel); cancel: 64 KiB morsels, queues full, seconds " +
			"from cancel until every morsel is released; pipeline: scan -> filter (keeps a quarter of the rows) -> " +
			"aggregate over 1 GiB of 16-byte rows (--quick: 64 MiB) in 64 KiB morsels, seconds and the process's peak " +
			"RSS. Impls: offheap (exchange.Exchange on a pool.Pool: segments recycled, a byte budget); chan-ref (a chan " +
			"pool.Ref: zero-copy, a pool lock per reserve and release, no byte bound); chan-bytes (a chan []byte: each " +
			"morsel copied into a new heap slice); ring (a disruptor-style ring of preallocated []byte entries, written " +
			"here: no copy, no allocation, but a morsel cannot outlive its turn and the ring's memory is fixed); " +
			"arrow-ipc (the bytes as a record batch through arrow-go's IPC stream over io.Pipe; one writer, one reader). " +
			"The baselines' queues hold 1,024 morsels (handoff) or as many as the exchange's budget holds (size, cancel, " +
			"pipeline); slow-consumer gives them 1,024.",
		Claim: &bench.Claim{
			Seed:      "Go channels; the LMAX Disruptor",
			Published: "a channel hand-off costs 53 ns uncontended and 121-205 ns contended, and copies through the Go heap; Disruptor-style rings reach 8-10 ns",
			Answer:    answer,
		},
		Tasks: tasks,
	}
}

// answer gives the handoff figures of offheap and its baselines.
func answer(o bench.Outcome) string {
	v := func(c, impl string) string {
		x, ok := o.Value(c, impl, 0, "ns/op")
		if !ok {
			return "-"
		}
		return fmt.Sprintf("%.1f ns", x)
	}
	if v("handoff", "offheap") == "-" {
		return ""
	}
	return fmt.Sprintf("%s per hand-off of a 64-byte morsel, %s in batches of 64, %s with 2 producers and 2 consumers "+
		"(handoff; chan-ref %s, chan-bytes %s, ring %s; mpmc chan-ref %s)",
		v("handoff", "offheap"), v("handoff-batch", "offheap"), v("mpmc", "offheap"),
		v("handoff", "chan-ref"), v("handoff", "chan-bytes"), v("handoff", "ring"), v("mpmc", "chan-ref"))
}

func tasks(cfg bench.Config) ([]bench.Task, error) {
	var ts []bench.Task
	add := func(t bench.Task) { ts = append(ts, t) }
	for _, impl := range Impls {
		add(goTask(cfg, "handoff", impl, 0, 1, 1, smallMorsel, 1))
	}
	for _, impl := range Impls {
		add(goTask(cfg, "handoff-batch", impl, 0, 1, 1, smallMorsel, batchLen))
	}
	for _, impl := range Impls {
		add(goTask(cfg, "mpmc", impl, 0, 2, 2, smallMorsel, 1))
	}
	for _, n := range Sizes {
		for _, impl := range Impls {
			add(sizeTask(cfg, impl, n))
		}
	}
	for _, impl := range Impls {
		add(slowTask(cfg, impl))
	}
	for _, impl := range Impls {
		add(cancelTask(impl))
	}
	for _, impl := range Impls {
		add(pipelineTask(cfg, impl))
	}
	return ts, nil
}

// handoffBench returns the Go benchmark of a hand-off case for impl.
func handoffBench(impl string, np, nc, size, batch int) (func(*testing.B), error) {
	if impl == "arrow-ipc" {
		if np != 1 || nc != 1 {
			return nil, nil
		}
		return arrowHandoff(size, batch), nil
	}
	return handoff.Handoff(impl, np, nc, size, batch)
}

func goTask(cfg bench.Config, cs, impl string, n int64, np, nc, size, batch int) bench.Task {
	t := bench.Task{Case: cs, Impl: impl, N: n, MaxReps: maxReps}
	f, err := handoffBench(impl, np, nc, size, batch)
	switch {
	case err != nil:
		t.Run = func() (bench.Sample, error) { return bench.Sample{}, err }
	case f == nil:
		t.Skip = "an IPC stream over a pipe has one writer and one reader"
	default:
		t.Run = func() (bench.Sample, error) { return goBench(cfg, f), nil }
	}
	return t
}

// goBench runs f with bench.GoBench and rounds allocs/op to two places:
// what remains below that is the harness's own few allocations spread over
// millions of hand-offs.
func goBench(cfg bench.Config, f func(*testing.B)) bench.Sample {
	s := bench.GoBench(cfg.BenchTime, f)
	for i, fig := range s.Figures {
		if fig.Metric == "allocs/op" {
			s.Figures[i].Value = math.Round(fig.Value*100) / 100
		}
	}
	return s
}

// sizeTask measures the payload delivered per second with morsels of n
// bytes: the size case's Go benchmark, its ns/op turned into GB/s.
func sizeTask(cfg bench.Config, impl string, n int) bench.Task {
	t := goTask(cfg, "size", impl, int64(n), 1, 1, n, 1)
	if need := int64(handoff.HandoffConfig(1, 1, n).Capacity*n) * 3; cfg.MaxBytes > 0 && need > cfg.MaxBytes {
		t.Run, t.Skip = nil, fmt.Sprintf("needs about %d MiB, more than the %d MiB allowed (--max-mem)", need>>20, cfg.MaxBytes>>20)
	}
	if run := t.Run; run != nil {
		t.Run = func() (bench.Sample, error) {
			s, err := run()
			for _, f := range s.Figures {
				if f.Metric == "ns/op" && f.Value > 0 {
					return bench.Sample{Figures: []bench.Figure{{Metric: "gb_per_s", Value: float64(n) / f.Value}}}, err
				}
			}
			return bench.Sample{}, err
		}
	}
	return t
}

// transport opens impl shaped by c.
func transport(impl string, c handoff.Config) (handoff.Transport, error) {
	if impl == "arrow-ipc" {
		return newArrowIPC(c.MaxMorsel), nil
	}
	return handoff.New(impl, c)
}

func slowTask(cfg bench.Config, impl string) bench.Task {
	count, wait := 400, 20*time.Microsecond
	if cfg.Quick {
		count = 150
	}
	return bench.Task{Case: "slow-consumer", Impl: impl, N: bigMorsel, MaxReps: 1, Run: func() (bench.Sample, error) {
		t, err := transport(impl, handoff.Config{Producers: 1, Consumers: 1, MaxMorsel: bigMorsel, Budget: slowBudget, Capacity: 1024})
		if err != nil {
			return bench.Sample{}, err
		}
		defer t.Close()
		r, err := handoff.SlowConsumer(t, count, bigMorsel, slowBudget, wait)
		return bench.Sample{Figures: []bench.Figure{{Metric: "inflight_over_budget", Value: r}}}, err
	}}
}

func cancelTask(impl string) bench.Task {
	return bench.Task{Case: "cancel", Impl: impl, N: bigMorsel, Run: func() (bench.Sample, error) {
		c := handoff.Config{Producers: 1, Consumers: 1, MaxMorsel: bigMorsel, Budget: cancelBudget, Capacity: cancelBudget / bigMorsel}
		t, err := transport(impl, c)
		if err != nil {
			return bench.Sample{}, err
		}
		defer t.Close()
		secs, err := handoff.Cancel(t, 1, 1, bigMorsel, 200*time.Microsecond, 20*time.Millisecond)
		return bench.Sample{Figures: []bench.Figure{{Metric: "seconds", Value: secs}}}, err
	}}
}

func pipelineTask(cfg bench.Config, impl string) bench.Task {
	total := int64(1 << 30)
	if cfg.Quick {
		total = 64 << 20
	}
	return bench.Task{Case: "pipeline", Impl: impl, N: total, MaxReps: 1, Run: func() (bench.Sample, error) {
		c := handoff.Config{Producers: 1, Consumers: 1, MaxMorsel: bigMorsel, Budget: pipeBudget, Capacity: pipeBudget / bigMorsel}
		a, err := transport(impl, c)
		if err != nil {
			return bench.Sample{}, err
		}
		defer a.Close()
		b, err := transport(impl, c)
		if err != nil {
			return bench.Sample{}, err
		}
		defer b.Close()
		runtime.GC()
		debug.FreeOSMemory()
		r, err := handoff.Pipeline(a, b, total, pipeRows)
		return bench.Sample{Figures: []bench.Figure{{Metric: "seconds", Value: r.Seconds}, {Metric: "rss_peak_mib", Value: r.PeakRSSMiB}}}, err
	}}
}
