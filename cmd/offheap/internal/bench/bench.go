// Package bench is the harness behind `offheap bench`: a Suite is a value
// that plans Tasks, the runner repeats each measurement and keeps the median,
// and the results go out as a table, JSON lines or a Markdown report with plots.
//
// Each suite lives in a package of its own beside this one and exports a
// function returning its Suite; main.go lists them. Adding a suite is adding
// such a package and one line to that list.
package bench

import (
	"flag"
	"fmt"
	"regexp"
	"slices"
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
	// Cases, if set, runs only the tasks of the cases it matches; a suite
	// may also skip planning the others (Runner.Run drops them anyway).
	Cases *regexp.Regexp
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
	// Claim, if set, is the published result the suite reproduces; the
	// report opens the suite's section, and its headline table, with it.
	Claim *Claim
	// Flags optionally registers the suite's own flags; their names should
	// start with the suite's name ("vmem-max").
	Flags func(fs *flag.FlagSet)
	// Tasks lists the measurements for cfg, in the order they should run.
	Tasks func(cfg Config) ([]Task, error)
	// Summary optionally derives results from the measured ones once every
	// task has run (a mean over cases, a count of wins); they are reported
	// after them, in the table and the JSON alike.
	Summary func(results []Result) []Result
}

// Claim is a seed's published result and how to read this run's answer to it
// off the suite's results.
type Claim struct {
	Seed      string // who published it, as a reader knows it: "Opteryx MemoryPool"
	Published string // their figure in their terms: "134,104 commits/s of 100 B"
	// Answer returns this run's figure in the same terms, naming the case
	// it comes from, or "" when the run lacks the results it needs.
	Answer func(Outcome) string
}

// Value returns the result of case c, impl and n for metric, if measured.
func (o Outcome) Value(c, impl string, n int64, metric string) (float64, bool) {
	for _, r := range o.Results {
		if r.Case == c && r.Impl == impl && r.N == n && r.Metric == metric {
			return r.Value, true
		}
	}
	return 0, false
}

// Lookup returns the suites of all named, in the order given, or an error
// naming an unknown one. No names means all suites.
func Lookup(all []Suite, names []string) ([]Suite, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []Suite
	for _, n := range names {
		i := slices.IndexFunc(all, func(s Suite) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("bench: run suite %q: unknown suite (have %v)", n, suiteNames(all))
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
