package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	cases := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, c := range cases {
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// fakeSuite returns a suite whose tasks report a value that changes on each
// run, so the median is checkable.
func fakeSuite() Suite {
	run := func(vals ...float64) func() (Sample, error) {
		i := 0
		return func() (Sample, error) {
			v := vals[i%len(vals)]
			i++
			return Sample{Figures: []Figure{{"ns/op", v}, {"allocs/op", 0}},
				SeriesMetric: "rss_mib", Series: []Point{{0, v}, {1, v / 2}}}, nil
		}
	}
	noSeries := func(f func() (Sample, error)) func() (Sample, error) {
		return func() (Sample, error) {
			s, err := f()
			s.Series = nil
			return s, err
		}
	}
	claim := &Claim{Seed: "Someone", Published: "9 ns/op", Answer: func(o Outcome) string {
		v, ok := o.Value("c", "mine", 10, "ns/op")
		if !ok {
			return ""
		}
		return fmt.Sprintf("%.0f ns/op", v)
	}}
	return Suite{Name: "fake", Doc: "a test suite", Claim: claim, Tasks: func(Config) ([]Task, error) {
		return []Task{
			{Case: "c", Impl: "mine", N: 10, Run: run(9, 1, 5)},
			{Case: "c", Impl: "theirs", N: 10, Run: run(20, 10, 30)},
			{Case: "c", Impl: "mine", N: 1000, Run: run(7)},
			{Case: "c", Impl: "theirs", N: 1000, Run: run(70)},
			{Case: "one", Impl: "mine", Run: noSeries(run(2)), MaxReps: 1},
			{Case: "big", Impl: "theirs", Skip: "too big"},
		}, nil
	}}
}

func TestRunnerMediansAndJSON(t *testing.T) {
	var js bytes.Buffer
	r := Runner{Config: Config{Reps: 3}, JSON: &js}
	out, err := r.Run(fakeSuite())
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Skipped) != 1 || !strings.Contains(out.Skipped[0], "too big") {
		t.Fatalf("skipped = %v", out.Skipped)
	}
	want := map[string]float64{"mine/10": 5, "theirs/10": 20, "mine/1000": 7, "theirs/1000": 70, "mine/0": 2}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2*len(want) {
		t.Fatalf("%d JSON lines, want %d:\n%s", len(lines), 2*len(want), js.String())
	}
	for _, l := range lines {
		var res Result
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatal(err)
		}
		if res.Suite != "fake" || res.Metric != "ns/op" {
			continue
		}
		key := res.Impl + "/" + strconv.FormatInt(res.N, 10)
		if res.Value != want[key] {
			t.Errorf("%s: median %v, want %v", key, res.Value, want[key])
		}
	}
}

// TestRunnerGoesRound checks that repetitions go round the tasks: every
// task's first, then every task's second, a task capped by MaxReps sitting
// out the rounds past its cap.
func TestRunnerGoesRound(t *testing.T) {
	var order []string
	task := func(impl string, maxReps int) Task {
		return Task{Case: "c", Impl: impl, MaxReps: maxReps, Run: func() (Sample, error) {
			order = append(order, impl)
			return Sample{Figures: []Figure{{"ns/op", 1}}}, nil
		}}
	}
	s := Suite{Name: "round", Tasks: func(Config) ([]Task, error) {
		return []Task{task("a", 0), task("b", 1), task("c", 0)}, nil
	}}
	if _, err := (&Runner{Config: Config{Reps: 3}}).Run(s); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(order, " "), "a b c a c a c"; got != want {
		t.Fatalf("ran %q, want %q", got, want)
	}
}

func TestRunnerReportsTaskErrors(t *testing.T) {
	boom := errors.New("boom")
	s := Suite{Name: "bad", Tasks: func(Config) ([]Task, error) {
		return []Task{{Case: "c", Impl: "i", Run: func() (Sample, error) { return Sample{}, boom }}}, nil
	}}
	if _, err := (&Runner{Config: Config{Reps: 2}}).Run(s); !errors.Is(err, boom) {
		t.Fatalf("task error not returned: %v", err)
	}
}

func TestTableHasRatios(t *testing.T) {
	out, err := (&Runner{Config: Config{Reps: 3}}).Run(fakeSuite())
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, out, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "20.00 (4.00x)") || !strings.Contains(b.String(), "70.00 (10.00x)") {
		t.Fatalf("table lacks values with ratios:\n%s", b.String())
	}
}

func TestWriteReport(t *testing.T) {
	out, err := (&Runner{Config: Config{Reps: 1}}).Run(fakeSuite())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteReport(dir, Config{Reps: 1}, []string{"fake"}, []Outcome{out}); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "fake-c.png"))
	if err != nil || st.Size() < 1000 || !strings.Contains(string(md), "(fake-c.png)") {
		t.Errorf("case c's figure missing, empty or not linked: %v", err)
	}
	// Case one has a single impl, so nothing to compare, and no series.
	if _, err := os.Stat(filepath.Join(dir, "fake-one.png")); err == nil || strings.Contains(string(md), "fake-one.png") {
		t.Error("a figure for a case with nothing to compare")
	}
	if files, _ := os.ReadDir(dir); len(files) != 2 {
		t.Errorf("%d files in the report, want report.md and one figure", len(files))
	}
	for _, want := range []string{
		"Skipped: big/theirs n=0: too big",
		"| Someone | 9 ns/op | fake | 9 ns/op |",
		"**Someone published:** 9 ns/op  \n**This run:** 9 ns/op",
		"Command: `offheap bench fake`",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

// TestPanels checks what a case's figure shows: a panel per metric that
// differs between impls, a category per size, values by impl.
func TestPanels(t *testing.T) {
	out, err := (&Runner{Config: Config{Reps: 3}}).Run(fakeSuite())
	if err != nil {
		t.Fatal(err)
	}
	ps := panels(out.Results, "c")
	if len(ps) != 1 || ps[0].unit != "ns/op" { // allocs/op is 0 for both impls
		t.Fatalf("panels %+v, want one of ns/op", ps)
	}
	p := ps[0]
	if !slices.Equal(p.cats, []string{"10", "1k"}) || !slices.Equal(p.impls, []string{"mine", "theirs"}) ||
		!slices.Equal(p.vals[0], []float64{5, 7}) || !slices.Equal(p.vals[1], []float64{20, 70}) {
		t.Fatalf("panel %+v", p)
	}
	// One size, several metrics: a panel per unit, a category per metric.
	rs := []Result{
		{Case: "b", Impl: "x", Metric: "rss_base_mib", Value: 10}, {Case: "b", Impl: "y", Metric: "rss_base_mib", Value: 10.2},
		{Case: "b", Impl: "x", Metric: "rss_peak_mib", Value: 100}, {Case: "b", Impl: "y", Metric: "rss_peak_mib", Value: 300},
		{Case: "b", Impl: "x", Metric: "rss_after_mib", Value: 10}, {Case: "b", Impl: "y", Metric: "rss_after_mib", Value: 290},
		{Case: "b", Impl: "x", Metric: "free_seconds", Value: 1}, {Case: "b", Impl: "y", Metric: "free_seconds", Value: 2},
	}
	ps = panels(rs, "b")
	if len(ps) != 2 || ps[0].unit != "mib" || !slices.Equal(ps[0].cats, []string{"rss_peak", "rss_after"}) ||
		ps[1].unit != "seconds" || !slices.Equal(ps[1].cats, []string{"free"}) {
		t.Fatalf("panels %+v: want MiB (peak, after; base is constant) and seconds", ps)
	}
}

func TestFormats(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{formatN(16 << 20), "16Mi"}, {formatN(1 << 30), "1Gi"}, {formatN(10_000), "10k"}, {formatN(1_000_000), "1M"}, {formatN(100), "100"},
		{formatRatio(4.3210), "4.32x"}, {formatRatio(31301.06), "31301x"}, {formatRatio(12.34), "12.3x"},
		{unitOf("ns/op"), "ns/op"}, {unitOf("rss_after_5s_mib"), "mib"}, {unitOf("seconds"), "seconds"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestLookup(t *testing.T) {
	all := []Suite{{Name: "a"}, {Name: "b"}}
	_, err := Lookup(all, []string{"no-such-suite"})
	if want := `bench: run suite "no-such-suite": unknown suite (have [a b])`; err == nil || err.Error() != want {
		t.Fatalf("unknown suite: %v, want %s", err, want)
	}
	got, err := Lookup(all, []string{"b", "a"})
	if err != nil || len(got) != 2 || got[0].Name != "b" || got[1].Name != "a" {
		t.Fatalf("Lookup(b, a) = %v, %v", got, err)
	}
	if got, _ := Lookup(all, nil); len(got) != 2 {
		t.Fatalf("Lookup() = %v, want every suite", got)
	}
}

func TestGoBenchCountsAllocs(t *testing.T) {
	var sink []byte
	s := GoBench(10*time.Millisecond, func(b *testing.B) {
		for b.Loop() {
			sink = make([]byte, 64)
		}
	})
	_ = sink
	if len(s.Figures) != 2 || s.Figures[0].Value <= 0 || s.Figures[1].Value < 1 {
		t.Fatalf("GoBench = %+v, want positive ns/op and >= 1 allocs/op", s.Figures)
	}
}

// TestRunnerSummary checks that a suite's Summary sees every measured
// result and that its rows follow them, in the outcome and the JSON
// alike, under the suite's name.
func TestRunnerSummary(t *testing.T) {
	s := fakeSuite()
	var seen int
	s.Summary = func(rs []Result) []Result {
		seen = len(rs)
		sum := 0.0
		for _, r := range rs {
			if r.Metric == "ns/op" {
				sum += r.Value
			}
		}
		return []Result{{Case: "total", Impl: "all", Metric: "ns/op", Value: sum}}
	}
	var js bytes.Buffer
	out, err := (&Runner{Config: Config{Reps: 3}, JSON: &js}).Run(s)
	if err != nil {
		t.Fatal(err)
	}
	want := Result{Suite: "fake", Case: "total", Impl: "all", Metric: "ns/op", Value: 5 + 20 + 7 + 70 + 2}
	if seen != len(out.Results)-1 || out.Results[len(out.Results)-1] != want {
		t.Fatalf("summary saw %d of %d results; last result %+v, want %+v", seen, len(out.Results), out.Results[len(out.Results)-1], want)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	var last Result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last != want {
		t.Fatalf("last JSON line %q (%v), want %+v", lines[len(lines)-1], err, want)
	}
	var tb bytes.Buffer
	if err := WriteTable(&tb, out, false); err != nil || !strings.Contains(tb.String(), "total") {
		t.Fatalf("table lacks the summary row (%v):\n%s", err, tb.String())
	}
}

// TestRunnerCases checks that Config.Cases runs only the matching cases.
func TestRunnerCases(t *testing.T) {
	out, err := (&Runner{Config: Config{Reps: 1, Cases: regexp.MustCompile("^(one|big)$")}}).Run(fakeSuite())
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 2 || out.Results[0].Case != "one" || len(out.Skipped) != 1 {
		t.Fatalf("results %+v, skipped %v: want case one only, big skipped", out.Results, out.Skipped)
	}
}
