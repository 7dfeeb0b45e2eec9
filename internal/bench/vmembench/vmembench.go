// Package vmembench is the vmem suite of `offheap bench`: how long it takes to
// grow a region holding N bytes to 2N, in place versus by mremap versus by
// copying. The vmem package's Go benchmarks run the same Grower.
package vmembench

import (
	"flag"
	"fmt"
	"time"

	"github.com/offheap/offheap/internal/bench"
	"github.com/offheap/offheap/vmem"
)

// Impls are the growth implementations, offheap's first.
var Impls = []string{"inplace", "mremap", "copy"}

// Grower holds N touched bytes, ready to be grown to 2N by one implementation.
type Grower struct {
	impl string
	n    int
	r    *vmem.Region // inplace
	b    []byte       // mremap, copy
}

// NewGrower maps n bytes the way impl does and touches every page.
func NewGrower(impl string, n int) (*Grower, error) {
	g := &Grower{impl: impl, n: n}
	var err error
	switch impl {
	case "inplace":
		if g.r, err = vmem.Reserve(2*n, &vmem.Options{Name: "vmembench"}); err == nil {
			if err = g.r.Grow(n); err == nil {
				touch(g.r.Bytes())
			}
		}
	case "mremap", "copy":
		if g.b, err = vmem.MapAnon(n); err == nil {
			touch(g.b)
		}
	default:
		return nil, fmt.Errorf("vmembench: unknown impl %q", impl)
	}
	if err != nil {
		_ = g.Close()
		return nil, err
	}
	return g, nil
}

// touch writes one byte in every page, so each is resident.
func touch(b []byte) {
	for i := 0; i < len(b); i += vmem.PageSize() {
		b[i] = 1
	}
}

// Grow grows the memory from n to 2n bytes: the operation being timed.
func (g *Grower) Grow() error {
	var err error
	switch g.impl {
	case "inplace":
		return g.r.Grow(2 * g.n)
	case "mremap":
		g.b, err = vmem.GrowRemap(g.b, 2*g.n)
	case "copy":
		g.b, err = vmem.GrowCopy(g.b, 2*g.n)
	}
	return err
}

// Close unmaps the memory.
func (g *Grower) Close() error {
	if g.r != nil {
		return g.r.Close()
	}
	if g.b != nil {
		return vmem.Unmap(g.b)
	}
	return nil
}

// GrowOnce builds a Grower, times its Grow and closes it.
func GrowOnce(impl string, n int) (time.Duration, error) {
	g, err := NewGrower(impl, n)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	start := time.Now()
	if err := g.Grow(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

var minSize, maxSize int64

func init() {
	bench.Register(bench.Suite{
		Name: "vmem",
		Doc: "Case grow: seconds to grow a region holding N bytes (every page touched) to 2N. " +
			"inplace: offheap's reserved region made ready further (the address never moves); " +
			"mremap: mremap with MREMAP_MAYMOVE, QuestDB's way (the address may move); " +
			"copy: map 2N, copy, unmap. In-place growth should be flat in N and no slower than mremap.",
		Flags: func(fs *flag.FlagSet) {
			fs.Int64Var(&minSize, "vmem-min", 16<<20, "vmem suite: smallest N in bytes")
			fs.Int64Var(&maxSize, "vmem-max", 4<<30, "vmem suite: largest N in bytes (--quick caps it at 1 GiB)")
		},
		Tasks: tasks,
	})
}

func tasks(cfg bench.Config) ([]bench.Task, error) {
	hi := maxSize
	if cfg.Quick {
		hi = min(hi, 1<<30)
	}
	if minSize <= 0 || hi < minSize {
		return nil, fmt.Errorf("vmembench: sizes from %d to %d", minSize, hi)
	}
	var ts []bench.Task
	for n := minSize; n <= hi; n *= 2 {
		for _, impl := range Impls {
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
		d, err := GrowOnce(impl, int(n))
		return bench.Sample{Figures: []bench.Figure{{Metric: "seconds", Value: d.Seconds()}}}, err
	}
	return t
}
