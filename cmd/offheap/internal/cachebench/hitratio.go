// The hit-ratio cases (hit-<trace>, n = capacity in entries, metric
// hit_pct): every implementation replays each trace at each capacity with
// demand fill, the replays spread over GOMAXPROCS goroutines; and the
// summary rows (hit-mean, hit-near-best, hit-below-lru) over them.

package cachebench

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
)

// Names of the hit-ratio cases and their metrics.
const (
	hitPrefix     = "hit-"
	hitMetric     = "hit_pct"
	caseMean      = "hit-mean"      // per impl, the mean hit_pct over the points
	caseNearBest  = "hit-near-best" // per impl, the points within nearBest of the best impl's
	caseBelowLRU  = "hit-below-lru" // per impl, the points more than belowLRU under lru's
	pointsMetric  = "points"
	nearBest      = 0.5
	belowLRU      = 1.0
	quickMaxBytes = 1 << 20 // --quick replays only traces this small (compressed)
	// nondetReps caps the replays of an impl whose hit ratio varies from
	// run to run (see nondet); the others replay once, since a second run
	// would give the same figure.
	nondetReps = 3
)

// hitDoc describes the hit-ratio cases, for the suite's Doc.
const hitDoc = " Hit ratio, cases hit-<trace> (n = capacity in entries, metric hit_pct): each trace of " +
	"traces/ (ARC's OLTP and P3, the LIRS papers' traces; see its README), or of --cache-traces DIR, " +
	"replayed with demand fill (Get; on a miss, Set) at each capacity in its capacities.txt, by offheap " +
	"(a byte budget of exactly capacity entries of an 8-byte key and 8-byte value), otter, theine, ristretto " +
	"(NumCounters 10x, IgnoreInternalCost, Wait after each Set), golang-lru's lru, 2q and arc, and sieve, " +
	"s3fifo (libCacheSim's defaults) and opteryx-lruk (Opteryx BufferPool's victim choice) written here; " +
	"otter's, theine's and ristretto's figures vary from run to run: each is the median of up to 3 replays (1 with --quick); " +
	"theine and ristretto replay with no other replay running, their goroutines being part of the policy. hit-mean is each impl's " +
	"mean over the n points, hit-near-best the points within 0.5 of the best impl, hit-below-lru the points " +
	"more than 1 below lru. --quick replays the traces of at most 1 MiB (lirs_*) at their first capacity."

// nondet are the impls whose hit ratio varies from run to run: otter's and
// theine's sketches hash with random seeds (and theine's read buffer is
// drained by another goroutine); ristretto evicts from a random sample (Go
// map order) and drops the batches of Gets its policy goroutine has not
// taken in time.
var nondet = []string{"otter", "theine", "ristretto"}

// alone are the impls whose figure depends on their own goroutines keeping
// up with the replay (ristretto's policy goroutine drops batches of Gets it
// has not taken in time; theine's maintenance goroutine holds the policy
// lock its readers try): they replay with no other replay running, so the
// pool's own load does not lower their figures.
var alone = []string{"theine", "ristretto"}

// hitSettings are the hit-ratio cases' flag values.
type hitSettings struct {
	dir string // --cache-traces
}

func (h *hitSettings) flags(fs *flag.FlagSet) {
	fs.StringVar(&h.dir, "cache-traces", "", "cache suite: replay every *.keys.gz in `DIR` at the capacities listed in DIR/capacities.txt, instead of the built-in traces")
}

// hitPoint is one trace at one capacity.
type hitPoint struct {
	trace    *traceKeys
	capacity int
}

// tasks plans a hit-<trace> task per trace, capacity and impl, in that
// order, all served by one replays.
func (h *hitSettings) tasks(cfg bench.Config) ([]bench.Task, error) {
	set, err := h.traceSet()
	if err != nil {
		return nil, err
	}
	points, err := set.points(cfg.Quick)
	if err != nil {
		return nil, err
	}
	rp := &replays{}
	var ts []bench.Task
	for _, p := range points {
		if cfg.Cases != nil && !cfg.Cases.MatchString(hitPrefix+p.trace.name) {
			continue // not to be run: its replays are not planned
		}
		for _, impl := range HitImpls {
			reps := 1
			if slices.Contains(nondet, impl) && !cfg.Quick {
				reps = min(max(cfg.Reps, 1), nondetReps)
			}
			t := bench.Task{Case: hitPrefix + p.trace.name, Impl: impl, N: int64(p.capacity), MaxReps: reps}
			if least := minCapacity(impl); p.capacity < least {
				t.Skip = fmt.Sprintf("%s holds no fewer than %d entries", impl, least)
			} else {
				t.Run = rp.add(p, impl, reps)
			}
			ts = append(ts, t)
		}
	}
	return ts, nil
}

func (h *hitSettings) traceSet() (traceSet, error) {
	if h.dir != "" {
		return dirTraceSet(h.dir)
	}
	return builtinTraceSet()
}

// points lists the set's traces at their capacities: with quick, only the
// first capacity of the traces of at most quickMaxBytes compressed (or, if
// none is, of the smallest).
func (s traceSet) points(quick bool) ([]hitPoint, error) {
	ts := s.traces
	if quick {
		var err error
		if ts, err = s.quickTraces(); err != nil {
			return nil, err
		}
	}
	var ps []hitPoint
	for _, t := range ts {
		tk := &traceKeys{set: s, name: t.name}
		caps := t.capacities
		if quick {
			caps = caps[:1]
		}
		for _, c := range caps {
			ps = append(ps, hitPoint{tk, c})
		}
	}
	return ps, nil
}

func (s traceSet) quickTraces() ([]trace, error) {
	var small []trace
	var smallest trace
	least := int64(-1)
	for _, t := range s.traces {
		st, err := fs.Stat(s.fsys, t.name+traceExt)
		if err != nil {
			return nil, s.fileError(t.name+traceExt, err)
		}
		if st.Size() <= quickMaxBytes {
			small = append(small, t)
		}
		if least < 0 || st.Size() < least {
			smallest, least = t, st.Size()
		}
	}
	if len(small) == 0 {
		small = []trace{smallest}
	}
	return small, nil
}

// traceKeys are one trace's keys, read by the first replay that needs them
// and dropped when the last is done.
type traceKeys struct {
	set  traceSet
	name string
	once sync.Once
	keys []uint64
	err  error
	left atomic.Int64 // replays not yet done
}

func (t *traceKeys) load() ([]uint64, error) {
	t.once.Do(func() { t.keys, t.err = t.set.keys(t.name) })
	return t.keys, t.err
}

// done records that a replay of the trace is over.
func (t *traceKeys) done() {
	if t.left.Add(-1) == 0 {
		t.keys = nil
	}
}

// replays runs the replays of a plan on GOMAXPROCS goroutines, started by
// the first task run and taking the replays in task order, so each task
// waits only for its own and, when the last task has its figure, no replay
// is left running; a replay of an impl in alone runs by itself. After a
// failure the replays not yet begun are skipped.
type replays struct {
	once   sync.Once
	jobs   []*replayJob
	failed atomic.Bool
	excl   sync.RWMutex // held by a replay of an impl in alone, shared by the others
}

// replayJob is one replay: an impl's hit ratio at one point.
type replayJob struct {
	point hitPoint
	impl  string
	done  chan struct{}
	pct   float64
	err   error
}

var errSkipped = errors.New("skipped after an earlier replay failed")

// add plans reps replays of impl at p and returns the task's Run, whose
// i-th call returns the i-th replay's figure.
func (rp *replays) add(p hitPoint, impl string, reps int) func() (bench.Sample, error) {
	jobs := make([]*replayJob, reps)
	for i := range jobs {
		jobs[i] = &replayJob{point: p, impl: impl, done: make(chan struct{})}
		p.trace.left.Add(1)
	}
	rp.jobs = append(rp.jobs, jobs...)
	next := 0
	return func() (bench.Sample, error) {
		rp.once.Do(rp.start)
		j := jobs[min(next, len(jobs)-1)]
		next++
		<-j.done
		if j.err != nil {
			return bench.Sample{}, j.err
		}
		return bench.Sample{Figures: []bench.Figure{{Metric: hitMetric, Value: j.pct}}}, nil
	}
}

func (rp *replays) start() {
	queue := make(chan *replayJob, len(rp.jobs))
	for _, j := range rp.jobs {
		queue <- j
	}
	close(queue)
	for range min(runtime.GOMAXPROCS(0), len(rp.jobs)) {
		go func() {
			for j := range queue {
				rp.run(j)
			}
		}()
	}
}

func (rp *replays) run(j *replayJob) {
	defer close(j.done)
	defer j.point.trace.done()
	if slices.Contains(alone, j.impl) {
		rp.excl.Lock()
		defer rp.excl.Unlock()
	} else {
		rp.excl.RLock()
		defer rp.excl.RUnlock()
	}
	if rp.failed.Load() {
		j.err = errSkipped
		return
	}
	if j.pct, j.err = replayPoint(j.point, j.impl); j.err != nil {
		rp.failed.Store(true)
	}
}

// replayPoint replays p's trace against a new cache of impl and returns the
// hit ratio in percent.
func replayPoint(p hitPoint, impl string) (float64, error) {
	keys, err := p.trace.load()
	if err != nil {
		return 0, err
	}
	r, err := newReplayer(impl, p.capacity)
	if err != nil {
		return 0, err
	}
	hits := replay(r, keys)
	if err := r.close(); err != nil {
		return 0, fmt.Errorf("replay %s at %d: %w", p.trace.name, p.capacity, err)
	}
	return 100 * float64(hits) / float64(len(keys)), nil
}

// hitSummary derives the summary rows from the hit-ratio results: per impl,
// hit-mean (metric hit_pct), hit-near-best and hit-below-lru (metric
// points), each with n = the points the impl was measured at. Results of
// other cases are ignored; no hit-ratio results, no rows.
func hitSummary(results []bench.Result) []bench.Result {
	var hits []bench.Result
	for _, r := range results {
		if r.Metric == hitMetric && strings.HasPrefix(r.Case, hitPrefix) && r.Case != caseMean {
			hits = append(hits, r)
		}
	}
	points, impls, at := bench.Pivot(hits)
	hasLRU := slices.Contains(impls, "lru")
	var mean, near, below []bench.Result
	for _, impl := range impls {
		var n, nNear, nBelow int
		var sum float64
		for _, p := range points {
			v, ok := at[p][impl]
			if !ok {
				continue
			}
			n++
			sum += v
			if v >= best(at[p])-nearBest {
				nNear++
			}
			if l, ok := at[p]["lru"]; ok && v < l-belowLRU {
				nBelow++
			}
		}
		mean = append(mean, summaryRow(caseMean, impl, n, hitMetric, sum/float64(n)))
		near = append(near, summaryRow(caseNearBest, impl, n, pointsMetric, float64(nNear)))
		if hasLRU {
			below = append(below, summaryRow(caseBelowLRU, impl, n, pointsMetric, float64(nBelow)))
		}
	}
	return slices.Concat(mean, near, below)
}

func summaryRow(c, impl string, n int, metric string, v float64) bench.Result {
	return bench.Result{Case: c, Impl: impl, N: int64(n), Metric: metric, Value: v} // the runner sets Suite
}

// best returns the highest value of a point.
func best(vals map[string]float64) float64 {
	b := 0.0
	for _, v := range vals {
		b = max(b, v)
	}
	return b
}
