// Running Go benchmark functions (func(*testing.B)) inside the command, so a
// suite and its package's `go test -bench` share one workload.

package bench

import (
	"flag"
	"sync"
	"testing"
	"time"
)

var benchTimeMu sync.Mutex

// GoBench runs f with testing.Benchmark for about d and returns its ns/op and
// allocs/op. f should call b.ReportAllocs if allocations matter to it; they
// are counted either way.
func GoBench(d time.Duration, f func(b *testing.B)) Sample {
	benchTimeMu.Lock()
	defer benchTimeMu.Unlock()
	testing.Init() // registers test.benchtime; a no-op after the first call
	_ = flag.Set("test.benchtime", d.String())
	r := testing.Benchmark(f)
	if r.N == 0 {
		return Sample{}
	}
	return Sample{Figures: []Figure{
		{"ns/op", float64(r.T.Nanoseconds()) / float64(r.N)},
		{"allocs/op", float64(r.MemAllocs) / float64(r.N)},
	}}
}
