package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
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
	return Suite{Name: "fake", Doc: "a test suite", Tasks: func(Config) ([]Task, error) {
		return []Task{
			{Case: "c", Impl: "mine", N: 10, Run: run(9, 1, 5)},
			{Case: "c", Impl: "theirs", N: 10, Run: run(20, 10, 30)},
			{Case: "c", Impl: "mine", N: 1000, Run: run(7)},
			{Case: "c", Impl: "theirs", N: 1000, Run: run(70)},
			{Case: "one", Impl: "mine", Run: run(2), MaxReps: 1},
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
	for _, png := range []string{"fake-c-ns_op.png", "fake-one-ns_op.png", "fake-c-timeline.png"} {
		if !strings.Contains(string(md), "("+png+")") {
			t.Errorf("report does not link %s", png)
		}
		st, err := os.Stat(filepath.Join(dir, png))
		if err != nil || st.Size() < 1000 {
			t.Errorf("plot %s missing or empty: %v", png, err)
		}
	}
	if !strings.Contains(string(md), "Skipped: big/theirs n=0: too big") {
		t.Errorf("report does not list the skipped task:\n%s", md)
	}
}

func TestLookup(t *testing.T) {
	all := []Suite{{Name: "a"}, {Name: "b"}}
	if _, err := Lookup(all, []string{"no-such-suite"}); err == nil {
		t.Fatal("unknown suite accepted")
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
