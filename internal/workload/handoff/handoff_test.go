package handoff

import (
	"flag"
	"testing"
	"time"
)

func init() {
	testing.Init()
	_ = flag.Set("test.benchtime", "20ms") // testing.Benchmark here only checks the cases run
}

func config(np, nc, size int) Config {
	return Config{Producers: np, Consumers: nc, MaxMorsel: size, Budget: 256 << 10, Capacity: 64}
}

// TestTransports runs every case briefly on every transport.
func TestTransports(t *testing.T) {
	for _, impl := range Impls {
		t.Run(impl, func(t *testing.T) {
			for _, c := range [][4]int{{1, 1, 64, 1}, {1, 1, 64, 16}, {2, 2, 100, 1}, {2, 2, 100, 8}, {1, 1, 4 << 20, 1}} {
				f, err := Handoff(impl, c[0], c[1], c[2], c[3])
				if err != nil {
					t.Fatal(err)
				}
				if r := testing.Benchmark(f); r.N == 0 {
					t.Fatalf("handoff %v failed", c)
				}
			}
			tr, err := New(impl, config(1, 1, 16<<10))
			if err != nil {
				t.Fatal(err)
			}
			ratio, err := SlowConsumer(tr, 60, 16<<10, 256<<10, 200*time.Microsecond)
			if err != nil || ratio <= 0 {
				t.Fatalf("slow consumer: %v %v", ratio, err)
			}
			t.Logf("slow consumer: peak in flight / (budget + morsel) = %.2f", ratio)
			if impl == "offheap" && ratio > 1 {
				t.Errorf("the exchange held %.2f times its budget plus one morsel", ratio)
			}
			_ = tr.Close()
			tr, _ = New(impl, config(2, 2, 16<<10))
			secs, err := Cancel(tr, 2, 2, 16<<10, 20*time.Microsecond, 20*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("cancel: %.6f s", secs)
			_ = tr.Close()
			a, _ := New(impl, config(1, 1, 64<<10))
			b, _ := New(impl, config(1, 1, 64<<10))
			res, err := Pipeline(a, b, 16<<20, 4096)
			if err != nil {
				t.Fatal(err)
			}
			if res.Rows != 16<<20/RowSize || res.Kept < res.Rows/5 || res.Kept > res.Rows/3 {
				t.Fatalf("pipeline: %+v", res)
			}
			_, _ = a.Close(), b.Close()
		})
	}
}
