package exchangebench

import (
	"testing"
	"time"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/proc"
	"github.com/offheap/offheap/internal/workload/handoff"
)

// TestArrowIPC checks that the arrow-ipc transport delivers every morsel's
// bytes, one at a time and in batches, and ends the stream.
func TestArrowIPC(t *testing.T) {
	tr := newArrowIPC(1 << 10)
	defer tr.Close()
	const n = 100
	go func() {
		s := tr.Sender(0)
		for i := range n {
			if err := s.Send(100+i, func(b []byte) { handoff.Fill(b, i) }); err != nil {
				t.Error(err)
			}
		}
		_ = s.Close()
	}()
	r := tr.Receiver(0)
	for i := range n {
		want := make([]byte, 100+i)
		handoff.Fill(want, i)
		if err := r.Recv(func(b []byte) {
			if string(b) != string(want) {
				t.Fatalf("morsel %d: %d bytes differ", i, len(b))
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Recv(func([]byte) {}); err == nil {
		t.Fatal("no end of stream")
	}
	if r := testing.Benchmark(arrowHandoff(64, 64)); r.N == 0 {
		t.Fatal("batched arrow hand-off failed")
	}
}

// TestTasks runs every task of the quick suite once, briefly, and checks
// each gives its metric.
func TestTasks(t *testing.T) {
	if testing.Short() || proc.Race {
		t.Skip("runs the whole quick suite: minutes under the race detector (the transports' own tests run there)")
	}
	ts, err := tasks(bench.Config{Quick: true, Reps: 1, BenchTime: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, task := range ts {
		if task.Skip != "" {
			t.Logf("%s/%s: skipped: %s", task.Case, task.Impl, task.Skip)
			continue
		}
		s, err := task.Run()
		if err != nil {
			t.Fatalf("%s/%s/%d: %v", task.Case, task.Impl, task.N, err)
		}
		if len(s.Figures) == 0 || s.Figures[0].Value <= 0 {
			t.Fatalf("%s/%s/%d: %+v", task.Case, task.Impl, task.N, s)
		}
		seen[task.Case] = true
		t.Logf("%s/%s/%d: %+v", task.Case, task.Impl, task.N, s.Figures)
	}
	for _, c := range []string{"handoff", "handoff-batch", "mpmc", "size", "slow-consumer", "cancel", "pipeline"} {
		if !seen[c] {
			t.Errorf("case %s never ran", c)
		}
	}
}
