// The burst cases: allocate N 64-byte blocks, free them all (or all but one
// in 1000) and follow the process's RSS for five seconds. Each run happens in
// a fresh child process (this binary re-executed), because a Go heap keeps
// memory from earlier runs.

package churn

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/offheap/offheap/arena"
	"github.com/offheap/offheap/vmem"
)

// BurstImpls are the implementations of the burst cases, offheap's first.
var BurstImpls = []string{"offheap", "goheap"}

// BurstCases are the burst cases: free every block, or all but one in 1000.
var BurstCases = []string{"burst-free-all", "burst-survivors"}

// BurstBlock is the size of every block of the burst cases.
const BurstBlock = 64

// childEnv names the environment variable that makes this binary run one
// burst ("impl,case,n") and print its BurstResult as JSON instead of
// starting normally.
const childEnv = "OFFHEAP_CHURN_BURST"

// BurstResult is what one burst run measured, RSS in MiB.
type BurstResult struct {
	BaseMiB, PeakMiB, AfterFreeMiB, After1sMiB, After5sMiB float64
	AllocSeconds, FreeSeconds                              float64
	Series                                                 []Point // RSS every 50 ms
}

// Point is one RSS sample: X seconds since the burst began, Y MiB.
type Point struct{ X, Y float64 }

// Figure is one metric of a burst, with its unit in its name.
type Figure struct {
	Metric string
	Value  float64
}

// Figures returns the result as named metrics.
func (r BurstResult) Figures() []Figure {
	return []Figure{
		{Metric: "rss_base_mib", Value: r.BaseMiB},
		{Metric: "rss_peak_mib", Value: r.PeakMiB},
		{Metric: "rss_after_free_mib", Value: r.AfterFreeMiB},
		{Metric: "rss_after_1s_mib", Value: r.After1sMiB},
		{Metric: "rss_after_5s_mib", Value: r.After5sMiB},
		{Metric: "alloc_seconds", Value: r.AllocSeconds},
		{Metric: "free_seconds", Value: r.FreeSeconds},
	}
}

func init() {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(runChild(spec))
	}
}

// runChild runs the burst named by spec in this process and prints the result.
func runChild(spec string) int {
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "churn: bad %s=%q\n", childEnv, spec)
		return 2
	}
	n, err := strconv.Atoi(parts[2])
	if err == nil {
		var r BurstResult
		if r, err = BurstHere(parts[0], parts[1], n); err == nil {
			err = json.NewEncoder(os.Stdout).Encode(r)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Burst runs one burst in a fresh child process and returns what it measured.
func Burst(impl, cs string, n int) (BurstResult, error) {
	var r BurstResult
	exe, err := os.Executable()
	if err != nil {
		return r, fmt.Errorf("churn: find this binary: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", childEnv, impl, cs, n))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return r, fmt.Errorf("churn: burst %s %s in a child: %w: %s", cs, impl, err, errOut.String())
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("churn: burst %s %s: read the child's result: %w", cs, impl, err)
	}
	return r, nil
}

// BurstHere runs one burst in this process: n blocks of BurstBlock bytes
// allocated, then freed (all, or all but every 1000th for burst-survivors),
// with RSS sampled every 50 ms until five seconds after the last free.
func BurstHere(impl, cs string, n int) (BurstResult, error) {
	var r BurstResult
	if cs != BurstCases[0] && cs != BurstCases[1] {
		return r, fmt.Errorf("churn: unknown burst case %q", cs)
	}
	s := startSampler()
	r.BaseMiB = rssMiB()
	var survivors func() error
	var err error
	switch impl {
	case "offheap":
		survivors, err = burstOffheap(&r, cs, n)
	case "goheap":
		survivors, err = burstGoheap(&r, cs, n)
	default:
		err = fmt.Errorf("churn: unknown burst impl %q", impl)
	}
	if err != nil {
		s.stop()
		return r, err
	}
	freed := time.Now()
	r.AfterFreeMiB = rssMiB()
	time.Sleep(time.Until(freed.Add(time.Second)))
	r.After1sMiB = rssMiB()
	time.Sleep(time.Until(freed.Add(5 * time.Second)))
	r.After5sMiB = rssMiB()
	r.Series = s.stop()
	for _, p := range r.Series {
		r.PeakMiB = max(r.PeakMiB, p.Y)
	}
	return r, survivors()
}

// burstOffheap allocates and frees through an arena. Block pointers are kept
// in a table outside the Go heap, released as the frees pass it and unmapped
// before RSS is read after the frees.
func burstOffheap(r *BurstResult, cs string, n int) (func() error, error) {
	a, err := arena.New(&arena.Options{Name: "burst"})
	if err != nil {
		return nil, err
	}
	t, err := newPtrTable(n)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	for i := range n {
		b, err := a.Alloc(BurstBlock)
		if err != nil {
			return nil, err
		}
		b[0] = byte(i)
		t.set(i, b)
	}
	r.AllocSeconds = time.Since(start).Seconds()
	r.PeakMiB = rssMiB()
	keep := make([][]byte, 0, n/1000+1)
	start = time.Now()
	for i := range n {
		if i%(1<<17) == 0 {
			if err := t.releaseBelow(i); err != nil {
				return nil, err
			}
		}
		b := t.get(i, BurstBlock)
		if cs == "burst-survivors" && i%1000 == 0 {
			keep = append(keep, b)
			continue
		}
		if err := a.Free(b); err != nil {
			return nil, err
		}
	}
	r.FreeSeconds = time.Since(start).Seconds()
	if err := t.close(); err != nil {
		return nil, err
	}
	return func() error {
		for _, b := range keep {
			if err := a.Free(b); err != nil {
				return err
			}
		}
		return a.Close()
	}, nil
}

// burstGoheap allocates the same blocks on the Go heap, drops the references
// and runs a garbage collection.
func burstGoheap(r *BurstResult, cs string, n int) (func() error, error) {
	blocks := make([][]byte, n)
	start := time.Now()
	for i := range blocks {
		b := make([]byte, BurstBlock)
		b[0] = byte(i)
		blocks[i] = b
	}
	r.AllocSeconds = time.Since(start).Seconds()
	r.PeakMiB = rssMiB()
	keep := make([][]byte, 0, n/1000+1)
	start = time.Now()
	if cs == "burst-survivors" {
		for i := 0; i < n; i += 1000 {
			keep = append(keep, blocks[i])
		}
	}
	blocks = nil
	runtime.GC()
	r.FreeSeconds = time.Since(start).Seconds()
	return func() error {
		runtime.KeepAlive(keep)
		return nil
	}, nil
}

func rssMiB() float64 {
	n, err := vmem.RSS()
	if err != nil {
		return 0
	}
	return float64(n) / (1 << 20)
}

// sampler records RSS every 50 ms in the background.
type sampler struct {
	start  time.Time
	mu     sync.Mutex
	points []Point
	done   chan struct{}
	wg     sync.WaitGroup
}

func startSampler() *sampler {
	s := &sampler{start: time.Now(), done: make(chan struct{}), points: make([]Point, 0, 1024)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			s.record()
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *sampler) record() {
	p := Point{X: time.Since(s.start).Seconds(), Y: rssMiB()}
	s.mu.Lock()
	s.points = append(s.points, p)
	s.mu.Unlock()
}

// stop ends sampling and returns the points.
func (s *sampler) stop() []Point {
	close(s.done)
	s.wg.Wait()
	s.record()
	return s.points
}
