package cachebench

import (
	"strings"
	"testing"
	"time"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/lookup"
)

// TestAdapters checks every implementation's adapter stores and finds what
// it is given, so that a speed figure is never one of a broken adapter.
func TestAdapters(t *testing.T) {
	keys := lookup.Keys(100)
	v := lookup.Value()
	for _, impl := range SpeedImpls {
		s, err := newStores[impl](1000)
		if err != nil {
			t.Fatalf("%s: %v", impl, err)
		}
		for i := range keys {
			s.Set(&keys[i], v)
		}
		if w, ok := s.(interface{ Wait() }); ok {
			w.Wait()
		}
		for i := range keys {
			got, ok := s.Get([]byte("x"), &keys[i])
			if !ok || string(got) != "x"+string(v) {
				t.Fatalf("%s: key %d: %v %q", impl, i, ok, got)
			}
			if vw, ok := s.(lookup.Viewer); ok && vw.View(&keys[i]) != int(v[0]) {
				t.Fatalf("%s: view of key %d", impl, i)
			}
		}
		if got, ok := s.Get(nil, &lookup.Key{B: []byte("absent"), S: "absent"}); ok {
			t.Fatalf("%s: absent key found: %q", impl, got)
		}
		s.Close()
	}
}

// TestSuiteQuick plans the suite with --quick and runs a speed task and
// the memory case of the empty process, as the command would (the
// hit-ratio cases have tests of their own).
func TestSuiteQuick(t *testing.T) {
	s := &settings{entries: speedEntries, memoryEntries: memoryEntries}
	cfg := bench.Config{Quick: true, Reps: 1, BenchTime: 10 * time.Millisecond}
	ts, err := s.tasks(cfg)
	if err != nil {
		t.Fatal(err)
	}
	speedAndMemory := 0
	for _, task := range ts {
		if !strings.HasPrefix(task.Case, hitPrefix) {
			speedAndMemory++
		}
	}
	if want := len(SpeedCases)*len(SpeedImpls) - 1 + len(MemoryImpls); speedAndMemory != want {
		t.Fatalf("%d speed and memory tasks, want %d", speedAndMemory, want)
	}
	for _, task := range ts {
		if task.Case == "get" && task.Impl == "offheap" {
			smp, err := task.Run()
			if err != nil || len(smp.Figures) != 2 || smp.Figures[0].Value <= 0 {
				t.Fatalf("get offheap: %+v %v", smp, err)
			}
		}
	}
	r, err := memoryHere("empty", 1000)
	if err != nil || r.GCCPUMsPerCycle <= 0 {
		t.Fatalf("memory of an empty process: %+v %v", r, err)
	}
	// In this process other memory comes and goes, so RSS after the shrink
	// may end below where it started (a negative share, seen in CI): the
	// check is that the shrink gave back part of the peak.
	if r, err := memoryHere("offheap", 20000); err != nil || r.RSSOverBudget <= 0 || r.RSSAfterShrinkPct >= 100 || r.HeapBytesPerEntry > 16 {
		t.Fatalf("memory of offheap: %+v %v", r, err)
	}
	bad := &settings{entries: 1, memoryEntries: memoryEntries}
	if _, err := bad.tasks(cfg); err == nil {
		t.Fatal("1 entry accepted")
	}
}
