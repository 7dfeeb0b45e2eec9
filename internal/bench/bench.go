// Package bench is the harness behind `offheap bench`: suites register
// themselves here, the runner repeats each measurement and keeps the median,
// and the results go out as a table, JSON lines or a Markdown report with plots.
//
// A suite is a package under internal/bench that calls Register from an init
// function; cmd/offheap imports it for that effect. Adding a suite is adding
// such a package and one import line.
package bench

import (
	"flag"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Result is one figure, in the shape of DESIGN.md's JSON output contract.
type Result struct {
	Suite  string  `json:"suite"`
	Case   string  `json:"case"`
	Impl   string  `json:"impl"`
	N      int64   `json:"n"`
	Metric string  `json:"metric"` // unit in the name: ns/op, ops/s, seconds, rss_mib, allocs/op
	Value  float64 `json:"value"`
}

// Config holds the settings every suite sees.
type Config struct {
	Quick     bool          // finish every suite in well under a minute
	Reps      int           // runs of each task; the median is reported
	MaxBytes  int64         // the most memory a suite may use at once
	BenchTime time.Duration // target duration of one testing.Benchmark run (see GoBench)
}

// Figure is one metric measured by one run of a task.
type Figure struct {
	Metric string
	Value  float64
}

// Point is one sample of a time series: X in seconds since the run began.
type Point struct{ X, Y float64 }

// Sample is what one run of a task measured.
type Sample struct {
	Figures []Figure
	// Series optionally traces one metric over time (named by SeriesMetric);
	// the report plots it per case with one line per impl.
	SeriesMetric string
	Series       []Point
}

// Task is one measurement: a case of a suite run by one implementation at one size.
type Task struct {
	Case string
	Impl string
	N    int64
	Run  func() (Sample, error) // one repetition; the runner calls it Config.Reps times
	// MaxReps, if positive, caps the repetitions of a slow task below Config.Reps.
	MaxReps int
	// Skip, if set, says why this task cannot run here (too big for the
	// memory allowed, unsupported by the OS); the runner reports it instead.
	Skip string
}

// Suite is a named set of experiments.
type Suite struct {
	Name string
	Doc  string // one paragraph for the report: what is measured and against what
	// Flags optionally registers the suite's own flags; their names should
	// start with the suite's name ("vmem-max").
	Flags func(fs *flag.FlagSet)
	// Tasks lists the measurements for cfg, in the order they should run.
	Tasks func(cfg Config) ([]Task, error)
}

var (
	mu     sync.Mutex
	suites []Suite
)

// Register adds a suite; it panics on a duplicate name, a programmer error
// found at start-up.
func Register(s Suite) {
	mu.Lock()
	defer mu.Unlock()
	for _, o := range suites {
		if o.Name == s.Name {
			panic(fmt.Sprintf("bench: suite %q registered twice", s.Name))
		}
	}
	suites = append(suites, s)
}

// Suites returns every registered suite, sorted by name.
func Suites() []Suite {
	mu.Lock()
	defer mu.Unlock()
	out := slices.Clone(suites)
	slices.SortFunc(out, func(a, b Suite) int { return compareStrings(a.Name, b.Name) })
	return out
}

// Lookup returns the suites named, in the order given, or an error naming an
// unknown one. No names means all suites.
func Lookup(names []string) ([]Suite, error) {
	all := Suites()
	if len(names) == 0 {
		return all, nil
	}
	var out []Suite
	for _, n := range names {
		i := slices.IndexFunc(all, func(s Suite) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("bench: unknown suite %q (have %v)", n, suiteNames(all))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func suiteNames(s []Suite) []string {
	names := make([]string, len(s))
	for i := range s {
		names[i] = s[i].Name
	}
	return names
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
