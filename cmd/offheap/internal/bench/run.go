// The runner: repeats each task, keeps medians, shows progress, emits results.

package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"github.com/schollz/progressbar/v3"
)

// Outcome is everything one suite produced.
type Outcome struct {
	Suite   Suite
	Results []Result
	Series  []Series
	Skipped []string // tasks that could not run here, with why
}

// Series is the time trace kept for one case and impl.
type Series struct {
	Case, Impl, Metric string
	Points             []Point
}

// Runner runs suites and writes their results.
type Runner struct {
	Config   Config
	JSON     io.Writer // if set, one JSON object per result line, as each is measured
	Progress io.Writer // if set, a progress bar per suite
}

// Run runs one suite's tasks, each Config.Reps times, and returns the medians.
// The repetitions go round the tasks (every task's first, then every task's
// second, ...), so that the minutes a shared machine runs slow fall on every
// impl alike instead of on whichever ran then: the suites report ratios
// between impls.
func (r *Runner) Run(s Suite) (Outcome, error) {
	out := Outcome{Suite: s}
	tasks, err := s.Tasks(r.Config)
	if err != nil {
		return out, fmt.Errorf("bench: plan suite %s: %w", s.Name, err)
	}
	if c := r.Config.Cases; c != nil {
		tasks = slices.DeleteFunc(tasks, func(t Task) bool { return !c.MatchString(t.Case) })
	}
	bar := r.bar(s.Name, r.totalReps(tasks))
	samples := make([][]Sample, len(tasks))
	for round := range r.rounds(tasks) {
		for i, t := range tasks {
			if t.Skip != "" || round >= r.reps(t) {
				continue
			}
			smp, err := t.Run()
			_ = bar.Add(1)
			if err != nil {
				return out, fmt.Errorf("bench: run suite %s case %s impl %s n %d: %w", s.Name, t.Case, t.Impl, t.N, err)
			}
			samples[i] = append(samples[i], smp)
		}
	}
	for i, t := range tasks {
		if t.Skip != "" {
			out.Skipped = append(out.Skipped, fmt.Sprintf("%s/%s n=%d: %s", t.Case, t.Impl, t.N, t.Skip))
			_ = bar.Add(r.reps(t))
			continue
		}
		if err := r.keep(&out, t, samples[i]); err != nil {
			return out, err
		}
	}
	_ = bar.Finish()
	return out, r.summarize(&out)
}

// keep adds task t's medians over samples, and the series of its last
// sample, to out, and emits the medians.
func (r *Runner) keep(out *Outcome, t Task, samples []Sample) error {
	for _, f := range medians(samples) {
		res := Result{Suite: out.Suite.Name, Case: t.Case, Impl: t.Impl, N: t.N, Metric: f.Metric, Value: f.Value}
		out.Results = append(out.Results, res)
		if err := r.emit(res); err != nil {
			return err
		}
	}
	if last := samples[len(samples)-1]; len(last.Series) > 0 {
		out.Series = append(out.Series, Series{t.Case, t.Impl, last.SeriesMetric, last.Series})
	}
	return nil
}

// summarize adds and emits the suite's summary results, if it has any.
func (r *Runner) summarize(out *Outcome) error {
	if out.Suite.Summary == nil {
		return nil
	}
	for _, res := range out.Suite.Summary(out.Results) {
		res.Suite = out.Suite.Name
		out.Results = append(out.Results, res)
		if err := r.emit(res); err != nil {
			return err
		}
	}
	return nil
}

// reps is how many times t runs: Config.Reps, capped by t.MaxReps.
func (r *Runner) reps(t Task) int {
	n := max(r.Config.Reps, 1)
	if t.MaxReps > 0 {
		n = min(n, t.MaxReps)
	}
	return n
}

// rounds is the most repetitions of any of tasks.
func (r *Runner) rounds(tasks []Task) int {
	n := 0
	for _, t := range tasks {
		n = max(n, r.reps(t))
	}
	return n
}

func (r *Runner) totalReps(tasks []Task) int {
	total := 0
	for _, t := range tasks {
		total += r.reps(t)
	}
	return total
}

func (r *Runner) bar(name string, total int) *progressbar.ProgressBar {
	if r.Progress == nil {
		return progressbar.DefaultSilent(int64(total))
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(r.Progress),
		progressbar.OptionSetDescription(name),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
	)
}

func (r *Runner) emit(res Result) error {
	if r.JSON == nil {
		return nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("bench: encode result: %w", err)
	}
	_, err = fmt.Fprintf(r.JSON, "%s\n", b)
	return err
}

// medians returns, for each metric in the order first seen, the median of its
// values across samples.
func medians(samples []Sample) []Figure {
	var order []string
	values := map[string][]float64{}
	for _, s := range samples {
		for _, f := range s.Figures {
			if _, ok := values[f.Metric]; !ok {
				order = append(order, f.Metric)
			}
			values[f.Metric] = append(values[f.Metric], f.Value)
		}
	}
	out := make([]Figure, len(order))
	for i, m := range order {
		out[i] = Figure{m, Median(values[m])}
	}
	return out
}

// Median returns the median of v (the mean of the middle two for even lengths).
func Median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
