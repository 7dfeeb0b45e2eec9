package cachebench

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/offheap/offheap/cache"
	"github.com/offheap/offheap/cmd/offheap/internal/bench"
)

// TestBuiltinTraces checks the embedded set against its README: nine
// traces, 27 points, and the request and unique-key counts of two traces.
func TestBuiltinTraces(t *testing.T) {
	set, err := builtinTraceSet()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"arc_oltp": {250, 1000, 2000}, "arc_p3": {25000, 100000, 400000},
		"lirs_gli": {250, 1000, 2000}, "lirs_loop": {250, 500, 1000}, "lirs_multi2": {114, 568, 1705},
		"lirs_sprite": {142, 708, 2123}, "lirs_2_pools": {199, 994, 2982}, "lirs_cs": {28, 141, 423},
		"lirs_ps": {62, 308, 925},
	}
	if len(set.traces) != len(want) {
		t.Fatalf("%d traces, want %d", len(set.traces), len(want))
	}
	for _, tr := range set.traces {
		if !slices.Equal(tr.capacities, want[tr.name]) {
			t.Errorf("%s: capacities %v, want %v", tr.name, tr.capacities, want[tr.name])
		}
	}
	if ps, _ := set.points(false); len(ps) != 27 {
		t.Errorf("%d points, want 27", len(ps))
	}
	for _, tc := range []struct {
		name             string
		requests, unique int
	}{{"lirs_cs", 6781, 1409}, {"lirs_gli", 6015, 2529}} {
		keys, err := set.keys(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if n, u := len(keys), len(distinct(keys)); n != tc.requests || u != tc.unique {
			t.Errorf("%s: %d requests, %d unique keys; want %d, %d", tc.name, n, u, tc.requests, tc.unique)
		}
	}
}

func distinct(keys []uint64) map[uint64]bool {
	m := map[uint64]bool{}
	for _, k := range keys {
		m[k] = true
	}
	return m
}

// TestQuickPoints checks that --quick replays the small built-in traces at
// their first capacity, and that a set of only large traces keeps its
// smallest.
func TestQuickPoints(t *testing.T) {
	set, err := builtinTraceSet()
	if err != nil {
		t.Fatal(err)
	}
	ps, err := set.points(true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range ps {
		got = append(got, fmt.Sprintf("%s/%d", p.trace.name, p.capacity))
	}
	want := []string{"lirs_gli/250", "lirs_loop/250", "lirs_multi2/114", "lirs_sprite/142", "lirs_2_pools/199", "lirs_cs/28", "lirs_ps/62"}
	if !slices.Equal(got, want) {
		t.Errorf("quick points %v, want %v", got, want)
	}
	big := traceSet{fsys: set.fsys, dir: set.dir, traces: []trace{{"arc_p3", []int{1, 2}}, {"arc_oltp", []int{3, 4}}}}
	if ps, err := big.points(true); err != nil || len(ps) != 1 || ps[0].trace.name != "arc_oltp" || ps[0].capacity != 3 {
		t.Errorf("quick points of two large traces: %v, %v; want arc_oltp at 3", ps, err)
	}
}

// writeTraces makes a trace directory: files maps a name to its content;
// a .keys.gz given as text is gzipped.
func writeTraces(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		b := []byte(content)
		if strings.HasSuffix(name, traceExt) && !strings.HasPrefix(content, "raw:") {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(b)
			zw.Close()
			b = buf.Bytes()
		}
		b = bytes.TrimPrefix(b, []byte("raw:"))
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestTraceSetErrors feeds bad trace directories to the reader: each is a
// typed error naming the file once (and the line, where there is one),
// never a panic.
func TestTraceSetErrors(t *testing.T) {
	good := "1\n2\n3\n"
	truncated := func() string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(strings.Repeat("12345\n", 1000)))
		zw.Close()
		return "raw:" + buf.String()[:buf.Len()/2]
	}()
	cases := []struct {
		name   string
		files  map[string]string
		target error
		msg    string // in the error
		atRun  bool   // found when the keys are read, not when the set is opened
	}{
		{"no traces", map[string]string{"capacities.txt": "x 1\n"}, ErrNoTraces, "*.keys.gz", false},
		{"no capacities.txt", map[string]string{"x.keys.gz": good}, fs.ErrNotExist, "capacities.txt", false},
		{"no line for a trace", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": good, "y.keys.gz": good}, ErrNoCapacities, "y.keys.gz", false},
		{"no capacities on a line", map[string]string{"capacities.txt": "x\n", "x.keys.gz": good}, ErrNoCapacities, "capacities.txt line 1", false},
		{"zero capacity", map[string]string{"capacities.txt": "# c\n\nx 5 0\n", "x.keys.gz": good}, ErrBadCapacity, `line 3: trace x: capacity "0"`, false},
		{"negative capacity", map[string]string{"capacities.txt": "x -3\n", "x.keys.gz": good}, ErrBadCapacity, `"-3"`, false},
		{"word capacity", map[string]string{"capacities.txt": "x ten\n", "x.keys.gz": good}, ErrBadCapacity, `"ten"`, false},
		{"fraction capacity", map[string]string{"capacities.txt": "x 1.5\n", "x.keys.gz": good}, ErrBadCapacity, `"1.5"`, false},
		{"huge capacity", map[string]string{"capacities.txt": "x 99999999999999999999\n", "x.keys.gz": good}, ErrBadCapacity, "99999999999999999999", false},
		{"capacity over 2^30", map[string]string{"capacities.txt": "x 1073741825\n", "x.keys.gz": good}, ErrBadCapacity, "1073741825", false},
		{"listed twice", map[string]string{"capacities.txt": "x 1\nx 2\n", "x.keys.gz": good}, ErrListedTwice, "line 2", false},
		{"path as a name", map[string]string{"capacities.txt": "../x 1\n", "x.keys.gz": good}, ErrBadName, "line 1", false},
		{"listed, no file", map[string]string{"capacities.txt": "x 1\ny 2\n", "x.keys.gz": good}, fs.ErrNotExist, "y.keys.gz", false},
		{"not gzip", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": "raw:1\n2\n"}, ErrBadGzip, "x.keys.gz", false},
		{"truncated gzip", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": truncated}, ErrBadGzip, "x.keys.gz", true},
		{"empty trace", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": ""}, ErrNoKeys, "x.keys.gz", true},
		{"word key", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": "1\nabc\n"}, ErrBadKey, `x.keys.gz line 2: key "abc"`, true},
		{"blank line", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": "1\n\n2\n"}, ErrBadKey, "line 2", true},
		{"negative key", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": "-1\n"}, ErrBadKey, "line 1", true},
		{"spaced key", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": " 1\n"}, ErrBadKey, "line 1", true},
		{"overflowing key", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": "18446744073709551616\n"}, ErrBadKey, "line 1", true},
		{"long line", map[string]string{"capacities.txt": "x 1\n", "x.keys.gz": "1\n" + strings.Repeat("7", 100) + "\n"}, ErrBadKey, "line 2", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTraces(t, tc.files)
			set, err := dirTraceSet(dir)
			if !tc.atRun {
				checkTraceError(t, err, tc.target, tc.msg, dir)
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			_, err = set.keys("x")
			checkTraceError(t, err, tc.target, tc.msg, dir)
		})
	}
	t.Run("no directory", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "none")
		_, err := dirTraceSet(dir)
		checkTraceError(t, err, fs.ErrNotExist, "read traces "+dir, dir)
	})
	t.Run("a file", func(t *testing.T) {
		dir := writeTraces(t, map[string]string{"capacities.txt": "x 1\n"})
		file := filepath.Join(dir, "capacities.txt")
		_, err := dirTraceSet(file)
		checkTraceError(t, err, syscall.ENOTDIR, "read traces "+file, file)
	})
}

func checkTraceError(t *testing.T, err, target error, msg, dir string) {
	t.Helper()
	switch {
	case err == nil:
		t.Fatalf("no error, want %v", target)
	case !errors.Is(err, target):
		t.Fatalf("error %q is not %v", err, target)
	case !strings.Contains(err.Error(), msg):
		t.Fatalf("error %q does not say %q", err, msg)
	case strings.Count(err.Error(), dir) != 1:
		t.Fatalf("error %q does not name %s once", err, dir)
	}
}

// planHit plans the hit-ratio cases through the suite, as the command does,
// with args as its flags.
func planHit(t *testing.T, cfg bench.Config, args ...string) ([]bench.Task, error) {
	t.Helper()
	s := Suite()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	s.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	ts, err := s.Tasks(cfg)
	var hit []bench.Task
	for _, tk := range ts {
		if strings.HasPrefix(tk.Case, hitPrefix) {
			hit = append(hit, tk)
		}
	}
	return hit, err
}

// TestHitTasks replays a directory of two small traces through the suite's
// plan: every impl's figure is the one worked out by hand, ristretto's and
// its peers' included (each point holds every key, so only compulsory
// misses remain, or holds one key of a loop of two, so every access misses
// in every policy); 2q, which cannot be made that small, is skipped.
func TestHitTasks(t *testing.T) {
	dir := writeTraces(t, map[string]string{
		"capacities.txt": "# two traces\nab 2 1\ncd 3\n",
		"ab.keys.gz":     "1\n2\n1\n2\n1\n2\n",
		"cd.keys.gz":     "3\n4\n5\n3\n4\n5\n3\n4\n",
	})
	ts, err := planHit(t, bench.Config{Reps: 5}, "--cache-traces", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"hit-ab/2": 4.0 / 6 * 100, "hit-ab/1": 0, "hit-cd/3": 5.0 / 8 * 100}
	if len(ts) != len(want)*len(HitImpls) {
		t.Fatalf("%d tasks, want %d", len(ts), len(want)*len(HitImpls))
	}
	for _, tk := range ts {
		if tk.Impl == "2q" && tk.N == 1 {
			if tk.Skip == "" || tk.Run != nil {
				t.Errorf("2q at capacity 1: not skipped")
			}
			continue
		}
		if tk.Impl == "arc" && tk.N == 1 {
			// golang-lru's ARC of size 1 may hold two entries (its replace
			// evicts nothing when its target list is empty): not checked.
			continue
		}
		for range min(5, max(tk.MaxReps, 1)) {
			smp, err := tk.Run()
			if err != nil {
				t.Fatalf("%s/%s n=%d: %v", tk.Case, tk.Impl, tk.N, err)
			}
			w := want[fmt.Sprintf("%s/%d", tk.Case, tk.N)]
			if len(smp.Figures) != 1 || smp.Figures[0].Metric != hitMetric || math.Abs(smp.Figures[0].Value-w) > 1e-9 {
				t.Errorf("%s/%s n=%d: %+v, want %s %.4f", tk.Case, tk.Impl, tk.N, smp.Figures, hitMetric, w)
			}
		}
		if reps := tk.MaxReps; (tk.Impl == "ristretto" || tk.Impl == "otter" || tk.Impl == "theine") != (reps == nondetReps) {
			t.Errorf("%s/%s: MaxReps %d", tk.Case, tk.Impl, reps)
		}
	}
}

// TestHitTasksBadKey plans a trace whose keys are bad: the plan succeeds
// (the header is gzip), the replays fail with ErrBadKey, and every task
// returns an error rather than hanging or panicking.
func TestHitTasksBadKey(t *testing.T) {
	dir := writeTraces(t, map[string]string{"capacities.txt": "x 2 3\n", "x.keys.gz": "1\n2\nthree\n"})
	ts, err := planHit(t, bench.Config{Reps: 1}, "--cache-traces", dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, tk := range ts {
		_, err := tk.Run()
		if err == nil || (i == 0 && !errors.Is(err, ErrBadKey)) {
			t.Fatalf("task %d (%s/%s): error %v, want %v first, then any", i, tk.Case, tk.Impl, err, ErrBadKey)
		}
	}
}

// TestHitTasksBadDir checks that a bad --cache-traces fails the plan.
func TestHitTasksBadDir(t *testing.T) {
	dir := writeTraces(t, map[string]string{"capacities.txt": "x 0\n", "x.keys.gz": "1\n"})
	if _, err := planHit(t, bench.Config{Reps: 1}, "--cache-traces", dir); !errors.Is(err, ErrBadCapacity) {
		t.Fatalf("plan: %v, want %v", err, ErrBadCapacity)
	}
}

// TestHitSummary checks the summary rows on figures worked out by hand.
func TestHitSummary(t *testing.T) {
	r := func(c string, n int64, impl string, v float64) bench.Result {
		return bench.Result{Suite: "cache", Case: c, Impl: impl, N: n, Metric: hitMetric, Value: v}
	}
	in := []bench.Result{
		r("hit-x", 10, "offheap", 50), r("hit-x", 10, "lru", 49.7), r("hit-x", 10, "sieve", 48.6),
		r("hit-x", 20, "offheap", 60), r("hit-x", 20, "lru", 61), r("hit-x", 20, "sieve", 61.4),
		r("hit-y", 10, "offheap", 10), r("hit-y", 10, "lru", 20), r("hit-y", 10, "sieve", 19.5),
		{Suite: "cache", Case: "get", Impl: "offheap", N: 10, Metric: "ns/op", Value: 1000}, // not a hit-ratio result
	}
	got := hitSummary(in)
	want := []bench.Result{
		{Case: caseMean, Impl: "offheap", N: 3, Metric: hitMetric, Value: 40},
		{Case: caseMean, Impl: "lru", N: 3, Metric: hitMetric, Value: (49.7 + 61 + 20) / 3},
		{Case: caseMean, Impl: "sieve", N: 3, Metric: hitMetric, Value: (48.6 + 61.4 + 19.5) / 3},
		{Case: caseNearBest, Impl: "offheap", N: 3, Metric: pointsMetric, Value: 1}, // x/10
		{Case: caseNearBest, Impl: "lru", N: 3, Metric: pointsMetric, Value: 3},     // within 0.5 everywhere
		{Case: caseNearBest, Impl: "sieve", N: 3, Metric: pointsMetric, Value: 2},   // x/20, y/10 (19.5 = 20 - 0.5)
		{Case: caseBelowLRU, Impl: "offheap", N: 3, Metric: pointsMetric, Value: 1}, // y/10 (60 is exactly 1 below 61)
		{Case: caseBelowLRU, Impl: "lru", N: 3, Metric: pointsMetric, Value: 0},
		{Case: caseBelowLRU, Impl: "sieve", N: 3, Metric: pointsMetric, Value: 1}, // x/10 by 1.1
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if g, w := got[i], want[i]; g.Case != w.Case || g.Impl != w.Impl || g.N != w.N || g.Metric != w.Metric || math.Abs(g.Value-w.Value) > 1e-9 {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
	if rows := hitSummary(in[9:]); rows != nil {
		t.Errorf("summary of no hit-ratio results: %+v", rows)
	}
	if rows := hitSummary([]bench.Result{r("hit-x", 1, "sieve", 3)}); len(rows) != 2 {
		t.Errorf("summary without lru: %+v, want hit-mean and hit-near-best only", rows)
	}
}

// TestOffheapHoldsCapacity checks the offheap cache's byte budget in the
// hit-ratio cases: capacity times the bytes one entry takes holds exactly
// capacity entries: all of the first capacity keys, no eviction, and then,
// however many more keys come, capacity entries again, filling the budget.
func TestOffheapHoldsCapacity(t *testing.T) {
	per, err := offheapEntryBytes()
	if err != nil {
		t.Fatal(err)
	}
	if per < hitKeySize+hitValueSize {
		t.Fatalf("an entry of %d bytes takes %d bytes of budget", hitKeySize+hitValueSize, per)
	}
	for _, capacity := range []int{1, 2, 7, 28, 141, 1000} {
		r, err := newOffheapReplay(capacity)
		if err != nil {
			t.Fatal(err)
		}
		for k := range uint64(capacity) {
			if r.access(k) {
				t.Fatalf("capacity %d: key %d hit before it was set", capacity, k)
			}
		}
		st := r.c.Stats()
		if st.Entries != capacity || st.Evictions != 0 || st.Rejections != 0 || st.BytesUsed != st.Budget || st.Budget != capacity*per {
			t.Fatalf("capacity %d, after %d keys: %d entries, %d evictions, %d rejections, %d of %d bytes (%d per entry)",
				capacity, capacity, st.Entries, st.Evictions, st.Rejections, st.BytesUsed, st.Budget, per)
		}
		for k := range uint64(capacity) {
			if !r.access(k) {
				t.Fatalf("capacity %d: key %d missed in a cache holding all keys", capacity, k)
			}
		}
		for k := range uint64(5*capacity + 3) {
			r.access(1000 + k)
			if n := r.c.Len(); n != capacity {
				t.Fatalf("capacity %d: %d entries after key %d", capacity, n, 1000+k)
			}
		}
		if err := r.close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOffheapReplayFull replays a real trace: the cache ends holding exactly
// capacity entries, with no error from any Set.
func TestOffheapReplayFull(t *testing.T) {
	set, err := builtinTraceSet()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := set.keys("lirs_cs")
	if err != nil {
		t.Fatal(err)
	}
	r, err := newOffheapReplay(141)
	if err != nil {
		t.Fatal(err)
	}
	replay(r, keys)
	if n := r.c.Len(); n != 141 {
		t.Errorf("%d entries after the replay, want 141", n)
	}
	if err := r.close(); err != nil {
		t.Fatal(err)
	}
}

// TestReplayersCompulsoryMisses replays lirs_gli at a capacity that holds
// every key: each impl then misses exactly once per key.
func TestReplayersCompulsoryMisses(t *testing.T) {
	set, err := builtinTraceSet()
	if err != nil {
		t.Fatal(err)
	}
	keys, err := set.keys("lirs_gli")
	if err != nil {
		t.Fatal(err)
	}
	unique := len(distinct(keys))
	for _, impl := range HitImpls {
		r, err := newReplayer(impl, unique)
		if err != nil {
			t.Fatal(err)
		}
		if hits := replay(r, keys); hits != len(keys)-unique {
			t.Errorf("%s: %d hits, want %d", impl, hits, len(keys)-unique)
		}
		if err := r.close(); err != nil {
			t.Error(err)
		}
	}
}

// TestOffheapReplayReportsErrors checks that a Set error other than a
// rejection reaches the replay's result.
func TestOffheapReplayReportsErrors(t *testing.T) {
	r, err := newOffheapReplay(4)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.c.Close(); err != nil {
		t.Fatal(err)
	}
	r.access(1)
	if err := r.close(); !errors.Is(err, cache.ErrClosed) {
		t.Fatalf("close: %v, want %v", err, cache.ErrClosed)
	}
}

// TestHitRunJSON runs the suite through the harness on a small directory,
// with --cases picking one trace: the JSON lines are that trace's figures
// for every impl, then the summary rows over its points.
func TestHitRunJSON(t *testing.T) {
	dir := writeTraces(t, map[string]string{
		"capacities.txt": "ab 2 3\ncd 3\n",
		"ab.keys.gz":     "1\n2\n1\n2\n1\n2\n",
		"cd.keys.gz":     "3\n4\n5\n3\n4\n5\n3\n4\n",
	})
	s := Suite()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	s.Flags(fs)
	if err := fs.Parse([]string{"--cache-traces", dir}); err != nil {
		t.Fatal(err)
	}
	var js bytes.Buffer
	r := bench.Runner{Config: bench.Config{Reps: 1, Cases: regexp.MustCompile("^hit-ab$")}, JSON: &js}
	out, err := r.Run(s)
	if err != nil {
		t.Fatal(err)
	}
	var lines []bench.Result
	for _, l := range strings.Split(strings.TrimSpace(js.String()), "\n") {
		var res bench.Result
		if err := json.Unmarshal([]byte(l), &res); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, res)
	}
	n := len(HitImpls)
	if len(lines) != 2*n+3*n || len(out.Results) != len(lines) {
		t.Fatalf("%d JSON lines, %d results; want %d", len(lines), len(out.Results), 5*n)
	}
	for i, res := range lines {
		want := []string{"hit-ab", "hit-ab", caseMean, caseNearBest, caseBelowLRU}[i/n]
		if res.Suite != "cache" || res.Case != want || (i >= 2*n && res.N != 2) {
			t.Errorf("line %d: %+v, want case %s", i, res, want)
		}
		if res.Case == caseMean && math.Abs(res.Value-(4.0/6*100+4.0/6*100)/2) > 1e-9 {
			t.Errorf("line %d: %+v, want a mean of 66.67", i, res)
		}
	}
}
