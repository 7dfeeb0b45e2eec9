package poolbench

import (
	"bytes"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/payload"
)

// TestStores checks that every implementation does the work the suite
// times: what is committed reads back, released keys are gone, latches
// hand out the bytes.
func TestStores(t *testing.T) {
	for _, impl := range Impls {
		t.Run(impl, func(t *testing.T) {
			s, err := open(impl, 1000)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var keys []uint64
			for i := range 500 {
				data := bytes.Repeat([]byte{byte(i)}, payload.PayloadSize)
				k, err := s.Commit(uint64(i+1), data)
				if err != nil {
					t.Fatal(err)
				}
				keys = append(keys, k)
			}
			for i, k := range keys {
				got, err := s.Read(k, []byte("x"))
				if err != nil || !bytes.Equal(got, append([]byte("x"), bytes.Repeat([]byte{byte(i)}, payload.PayloadSize)...)) {
					t.Fatalf("read %d: %v", i, err)
				}
			}
			if l, ok := s.(payload.Latcher); ok {
				v, err := l.Latch(keys[7])
				if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{7}, payload.PayloadSize)) {
					t.Fatalf("latch: %v", err)
				}
				if err := l.Unlatch(keys[7]); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < len(keys); i += 2 {
				if err := s.Release(keys[i]); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Read(keys[i], nil); err == nil {
					t.Fatalf("key %d still readable after release", i)
				}
			}
			for i := 1; i < len(keys); i += 2 {
				if _, err := s.Read(keys[i], nil); err != nil {
					t.Fatalf("key %d lost: %v", i, err)
				}
			}
		})
	}
	if _, err := open("nope", 1); err == nil {
		t.Fatal("unknown impl opened")
	}
}

func TestTasks(t *testing.T) {
	ts, err := tasks(bench.Config{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	skipped := 0
	for _, task := range ts {
		count[task.Case]++
		if task.Skip != "" {
			skipped++
		}
		if !slices.Contains(Impls, task.Impl) {
			t.Fatalf("impl %q", task.Impl)
		}
	}
	want := map[string]int{"commit-live": 15, "cycle-copy": 5, "cycle-latch": 3, "parallel-p1": 5, "parallel-p2": 5}
	if !maps.Equal(count, want) || skipped == 0 {
		t.Fatalf("cases %v (want %v), %d skipped under 64 MiB", count, want, skipped)
	}
}

// TestWorkloadsRun runs every workload briefly for every implementation.
func TestWorkloadsRun(t *testing.T) {
	if testing.Short() {
		t.Skip("benchmarks")
	}
	cfg := bench.Config{BenchTime: time.Millisecond}
	for _, impl := range Impls {
		if _, err := runLive(cfg, impl, 2000); err != nil {
			t.Fatal(err)
		}
		if _, err := runParallel(cfg, impl, 2); err != nil {
			t.Fatal(err)
		}
		smp, err := runStore(cfg, impl, func(s payload.Store) func(*testing.B) { return payload.CycleCopy(s) })
		if err != nil || len(smp.Figures) != 2 || smp.Figures[0].Value <= 0 {
			t.Fatalf("%s cycle-copy: %+v %v", impl, smp, err)
		}
	}
}
