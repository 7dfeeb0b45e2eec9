// Hit-ratio replay of synthetic traces through the policy, against an exact
// LRU: a deterministic check of the policy's robustness on workloads it was
// not tuned on, recency-heavy ones in particular.

package cache

import (
	"container/list"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

// synthTrace is a generated trace of keys.
type synthTrace struct {
	name string
	keys []uint64
}

// synthTraces returns the synthetic traces, each about a million requests,
// from a fixed seed.
func synthTraces() []synthTrace {
	r := rand.New(rand.NewPCG(1, 2))
	zipf := func(s float64, universe uint64, n int) []uint64 {
		z := rand.NewZipf(r, s, 1, universe-1)
		out := make([]uint64, n)
		for i := range out {
			out[i] = z.Uint64()
		}
		return out
	}
	var sliding, churn, drift, recency, scans []uint64
	// Uniform over a window of 5,000 keys that moves one key every 20
	// requests: pure recency, no frequency signal.
	for i := range 1_000_000 {
		sliding = append(sliding, uint64(i/20+r.IntN(5000)))
	}
	// Zipf, with a fresh hot set every 100,000 requests.
	for phase := range uint64(10) {
		for _, k := range zipf(1.1, 100_000, 100_000) {
			churn = append(churn, k+phase*1_000_000)
		}
	}
	// Zipf, its ranks shifting by 1,000 keys every 50,000 requests.
	for phase := range uint64(20) {
		for _, k := range zipf(1.01, 100_000, 50_000) {
			drift = append(drift, (k+phase*1000)%200_000)
		}
	}
	// 70% of requests re-reference a key |N(0, 800)| distinct keys back,
	// the rest a new key.
	var seen []uint64
	for range 1_000_000 {
		if len(seen) > 0 && r.Float64() < 0.7 {
			d := min(int(math.Abs(r.NormFloat64())*800), len(seen)-1)
			recency = append(recency, seen[len(seen)-1-d])
			continue
		}
		k := uint64(len(seen))
		seen = append(seen, k)
		recency = append(recency, k)
	}
	// Zipf, with a scan of 3,000 new keys every 10,000 requests.
	scan := uint64(1 << 40)
	for i, k := range zipf(1.02, 50_000, 800_000) {
		scans = append(scans, k)
		if i%10_000 == 0 {
			for range 3000 {
				scans = append(scans, scan)
				scan++
			}
		}
	}
	return []synthTrace{{"sliding", sliding}, {"zipf-churn", churn}, {"zipf-drift", drift}, {"recency", recency}, {"zipf+scan", scans}}
}

// synthGaps are the points where the policy is known to fall more than 1
// point below LRU, with the most it may: the window grows too slowly to
// reach CLOCK's ratio (which is within 1 point of LRU there) before the
// trace ends, and CLOCK itself trails LRU on pure recency. See the issue
// notes; a policy that closes the gaps should drop them from here.
//
// zipf-drift/8000 trails LRU by 1.13 since the duel stopped counting the
// candidate's own miss (it trailed by 0.88 before): a rising key enters
// main one use later. That miss is left out for the sweeps of
// TestPolicySweeps, where counting it put the policy up to 34 points below
// LRU.
var synthGaps = map[string]float64{
	"sliding/2000":    4,
	"recency/500":     4,
	"recency/2000":    2,
	"zipf-drift/8000": 1.5,
}

// TestPolicySyntheticTraces replays the synthetic traces at three
// capacities and requires the policy at most 1 point below LRU on each
// point (at most synthGaps on the known gaps).
func TestPolicySyntheticTraces(t *testing.T) {
	if proc.Race || check.On || testing.Short() {
		t.Skip("replays 5 million requests 3 times; TestPolicyHitRatio covers these builds")
	}
	for _, tr := range synthTraces() {
		for _, capacity := range []int{500, 2000, 8000} {
			lru, got := lruHitRatio(tr.keys, capacity), replayPolicy(t, tr.keys, capacity)
			name := tr.name + "/" + strconv.Itoa(capacity)
			t.Logf("%-16s lru %6.2f  policy %6.2f", name, lru, got)
			slack, known := synthGaps[name]
			if !known {
				slack = 1
			}
			if got < lru-slack {
				t.Errorf("%s: hit ratio %.2f%%, LRU %.2f%%: more than %.0f below", name, got, lru, slack)
			}
		}
	}
}

// TestPolicySweeps replays scans back and forth over keys used equally often
// (the shapes of the LIRS traces backf and zigzag, and a long one) and
// requires the policy at most 5 points below LRU, which serves each turn
// from the keys just read. Counting the candidate's own miss in the duel
// evicted each key just before the sweep reached it: 2.9% against LRU's
// 36.7% at 750 keys and 300 entries.
func TestPolicySweeps(t *testing.T) {
	if proc.Race || check.On || testing.Short() {
		t.Skip("replays 1.6 million requests; TestPolicyHitRatio covers these builds")
	}
	for _, c := range []struct {
		keys, sweeps int
		capacities   []int
	}{
		{750, 12, []int{100, 300, 600}},
		{2000, 26, []int{500, 1000, 1900}},
		{10_000, 100, []int{500, 2000, 8000}},
	} {
		trace := sweeps(c.keys, c.sweeps)
		for _, capacity := range c.capacities {
			lru, got := lruHitRatio(trace, capacity), replayPolicy(t, trace, capacity)
			t.Logf("%5d keys %4d entries: lru %6.2f  policy %6.2f", c.keys, capacity, lru, got)
			if got < lru-5 {
				t.Errorf("%d keys, %d entries: hit ratio %.2f%%, LRU %.2f%%: more than 5 below", c.keys, capacity, got, lru)
			}
		}
	}
}

// sweeps returns n sweeps over keys 0..keys-1, alternately up and down.
func sweeps(keys, n int) []uint64 {
	out := make([]uint64, 0, keys*n)
	for i := range n {
		for j := range keys {
			k := j
			if i%2 == 1 {
				k = keys - 1 - j
			}
			out = append(out, uint64(k))
		}
	}
	return out
}

// lruHitRatio replays keys through an exact LRU of capacity entries, with
// demand fill, and returns the hit ratio in %.
func lruHitRatio(keys []uint64, capacity int) float64 {
	order := list.New()
	at := make(map[uint64]*list.Element, capacity)
	hits := 0
	for _, k := range keys {
		if e, ok := at[k]; ok {
			hits++
			order.MoveToFront(e)
			continue
		}
		if order.Len() >= capacity {
			delete(at, order.Remove(order.Back()).(uint64))
		}
		at[k] = order.PushFront(k)
	}
	return 100 * float64(hits) / float64(len(keys))
}
