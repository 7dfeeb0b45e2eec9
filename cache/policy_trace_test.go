// Hit-ratio replay of real traces through the policy: a deterministic
// regression test of the policy's quality (hit ratios, not timing).

package cache

import (
	"bufio"
	"compress/gzip"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

// tracePoint is one trace at one capacity with the hit ratios (%) measured by
// the project for LRU and for the best of the peers (LRU, S3-FIFO, ARC, 2Q,
// otter, theine, ristretto, Opteryx LRU-K), from the table in
// /work/shared/traces/README.md (shipped with the command in
// cmd/offheap/internal/cachebench/traces/README.md).
type tracePoint struct {
	trace     string
	capacity  int
	lru, best float64
}

var smallTracePoints = []tracePoint{
	{"lirs_gli", 250, 0.9, 15.6},
	{"lirs_gli", 1000, 11.2, 49.9},
	{"lirs_gli", 2000, 57.4, 58.0},
	{"lirs_loop", 250, 0.0, 23.5},
	{"lirs_loop", 500, 0.0, 48.7},
	{"lirs_loop", 1000, 0.0, 98.5},
	{"lirs_multi2", 114, 8.0, 29.1},
	{"lirs_multi2", 568, 36.9, 50.3},
	{"lirs_multi2", 1705, 48.5, 65.9},
	{"lirs_sprite", 142, 29.8, 38.7},
	{"lirs_sprite", 708, 86.5, 86.5},
	{"lirs_sprite", 2123, 93.6, 93.6},
	{"lirs_2_pools", 199, 36.7, 50.4},
	{"lirs_2_pools", 994, 54.4, 54.4},
	{"lirs_2_pools", 2982, 63.9, 64.0},
	{"lirs_cs", 28, 1.8, 1.8},
	{"lirs_cs", 141, 1.8, 8.1},
	{"lirs_cs", 423, 1.8, 25.4},
	{"lirs_ps", 62, 7.4, 16.6},
	{"lirs_ps", 308, 16.3, 53.1},
	{"lirs_ps", 925, 48.5, 64.9},
}

// The ARC traces are large (13 MB); the test replays them from the directory
// in OFFHEAP_TRACES (for example /work/shared/traces) when it is set.
var arcTracePoints = []tracePoint{
	{"arc_oltp", 250, 16.5, 24.5},
	{"arc_oltp", 1000, 32.8, 40.8},
	{"arc_oltp", 2000, 42.5, 47.0},
	{"arc_p3", 25000, 2.6, 14.9},
	{"arc_p3", 100000, 29.3, 41.9},
	{"arc_p3", 400000, 75.3, 77.2},
}

// TestPolicyHitRatio replays the traces with demand fill (a miss adds the
// key), capacity in entries, and requires on every point at most 1 point
// below LRU and at most 4 below the best peer.
func TestPolicyHitRatio(t *testing.T) {
	points := smallTracePoints
	dirs := map[string]string{}
	for _, p := range smallTracePoints {
		dirs[p.trace] = "testdata/traces"
	}
	if proc.Race || check.On {
		// These builds test the same deterministic replay ten times slower:
		// one capacity per trace keeps them quick.
		points = nil
		for i := 0; i < len(smallTracePoints); i += 3 {
			points = append(points, smallTracePoints[i])
		}
	} else if d := os.Getenv("OFFHEAP_TRACES"); d != "" && !testing.Short() {
		points = append(arcTracePoints, points...)
		for _, p := range arcTracePoints {
			dirs[p.trace] = d
		}
	}
	traces := map[string][]uint64{}
	sum := 0.0
	for _, pt := range points {
		keys, ok := traces[pt.trace]
		if !ok {
			keys = readTrace(t, filepath.Join(dirs[pt.trace], pt.trace+".keys.gz"))
			traces[pt.trace] = keys
		}
		got := replayPolicy(t, keys, pt.capacity)
		sum += got
		t.Logf("%-13s %7d  lru %5.1f  best peer %5.1f  policy %6.2f", pt.trace, pt.capacity, pt.lru, pt.best, got)
		if got < pt.lru-1 || got < pt.best-4 {
			t.Errorf("%s at %d: hit ratio %.2f%%, want at least %.1f (LRU %.1f - 1, best peer %.1f - 4)",
				pt.trace, pt.capacity, got, max(pt.lru-1, pt.best-4), pt.lru, pt.best)
		}
	}
	t.Logf("mean over %d points: %.2f%%", len(points), sum/float64(len(points)))
}

// replayPolicy replays keys through a policy sized for capacity entries of
// weight 1, doing what the cache does: hit on a present key, else miss,
// admit, evict until the new entry fits, add. It returns the hit ratio in %.
func replayPolicy(t testing.TB, keys []uint64, capacity int) float64 {
	var p policy
	defer initPolicy(t, &p, int64(capacity), uint32(capacity+1))()
	index := make(map[uint64]uint32, capacity)
	owner := make([]uint64, capacity+1)
	ids := make([]uint32, 0, capacity+1)
	for i := capacity; i >= 0; i-- {
		ids = append(ids, uint32(i))
	}
	notPinned := func(uint32) bool { return false }
	hits := 0
	for _, k := range keys {
		if id, ok := index[k]; ok {
			hitID(&p, id)
			hits++
			continue
		}
		h := mix64(k)
		p.miss(h)
		if !p.admit(h, 1) {
			continue
		}
		for p.used()+1 > int64(capacity) {
			v, ok := p.victim(notPinned)
			if !ok {
				t.Fatalf("no victim with %d of %d used", p.used(), capacity)
			}
			p.remove(v)
			delete(index, owner[v])
			ids = append(ids, v)
		}
		id := ids[len(ids)-1]
		ids = ids[:len(ids)-1]
		owner[id], index[k] = k, id
		p.add(id, h, 1)
	}
	return 100 * float64(hits) / float64(len(keys))
}

// mix64 is a 64-bit finalizer (MurmurHash3's), standing in for the cache's
// hash of the key bytes.
func mix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// readTrace reads a gzip-compressed trace: one decimal key per line.
func readTrace(t testing.TB, path string) []uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var keys []uint64
	s := bufio.NewScanner(z)
	for s.Scan() {
		k, err := strconv.ParseUint(s.Text(), 10, 64)
		if err != nil {
			t.Fatalf("%s line %d: %v", path, len(keys)+1, err)
		}
		keys = append(keys, k)
	}
	if err := s.Err(); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return keys
}
