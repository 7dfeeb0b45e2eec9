// Adversarial tests of round 9: a two-step Set's last try under the lock
// (reserve, after roomInPool found nothing to evict) against pins that
// really fill or split the pool, Deletes, Resizes and Close; and the hit
// ratio of the policy on synthetic traces it was not tuned on.

package cache

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

// poolMatches9 checks that c's own pool holds exactly the bytes of the
// cache's live and gone entries: a reservation a Set made and then lost
// (failed, or closed meanwhile) would stay in Used.
func poolMatches9(t testing.TB, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if ps := c.cur().p.Stats(); int64(ps.Used) != c.used+c.gone {
		t.Errorf("pool holds %d bytes, the cache's entries %d (used %d + gone %d)", ps.Used, c.used+c.gone, c.used, c.gone)
	}
}

// splitByPins9 fills a 16 KiB cache with a pool of its own with 8 entries
// of exactly 2 KiB and pins every other one, so that once the unpinned
// entries leave, 8 KiB are free in four pieces of 2 KiB. It returns the
// handles.
func splitByPins9(t *testing.T) (*Cache, []Handle) {
	t.Helper()
	c := newT(t, 16<<10, nil)
	for i := range 8 {
		setT(t, c, key(i), make([]byte, 2<<10-len(key(i))))
	}
	if st := c.Stats(); st.Entries != 8 || st.BytesUsed != 16<<10 {
		t.Fatalf("filled: %+v", st)
	}
	var hs []Handle
	for i := 1; i < 8; i += 2 {
		_, h, err := c.Pin(key(i))
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	return c, hs
}

// TestTwoStepSetFullWhenPinsSplitThePool9: the budget has room for a 4 KiB
// entry once the unpinned entries are evicted, but the pins split the free
// space into pieces of 2 KiB, so no reservation can succeed: the last try
// under the lock must fail, and the Set must say ErrFull (it really is the
// pins), promptly, leaving no promise, stall or reservation behind; and
// once the pins are released the same Set must succeed.
func TestTwoStepSetFullWhenPinsSplitThePool9(t *testing.T) {
	c, hs := splitByPins9(t)
	big := make([]byte, 4<<10-len(key(100)))
	within(t, "two-step Set on a pool split by pins", func() {
		err := c.Set(key(100), big)
		if !errors.Is(err, ErrFull) {
			t.Errorf("Set of 4 KiB into 8 KiB free in pieces of 2 KiB between pins: %v, want ErrFull", err)
		}
	})
	quiet8(t, c)
	poolMatches9(t, c)
	if st := c.Stats(); st.Entries != 4 || st.BytesPinned != 8<<10 {
		t.Errorf("after the failed Set: %+v, want the 4 pinned entries alone", st)
	}
	for _, h := range hs {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Set(key(100), big); err != nil {
		t.Errorf("Set of 4 KiB with nothing pinned: %v", err)
	}
	quiet8(t, c)
	poolMatches9(t, c)
}

// TestTwoStepSetsFullTogether9 runs several such Sets at once: each must
// end (the last of them to find nothing to evict fails, and its end wakes
// those waiting for it), each with ErrFull, and nothing may be left in
// flight, stalled, promised or reserved.
func TestTwoStepSetsFullTogether9(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for round := range 20 {
		c, hs := splitByPins9(t)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		within(t, "concurrent two-step Sets on a pool split by pins", func() {
			for g := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[g] = c.Set(key(100+g), make([]byte, 3<<10+g*256))
				}()
			}
			wg.Wait()
		})
		for g, err := range errs {
			if !errors.Is(err, ErrFull) {
				t.Errorf("round %d: Set %d: %v, want ErrFull", round, g, err)
			}
		}
		quiet8(t, c)
		poolMatches9(t, c)
		for _, h := range hs {
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	}
}

// TestTwoStepSetsWithFewPinsNeverFull9 races two-step Sets against Deletes,
// Gets, a goroutine that pins and releases small entries, and a resizer,
// on a cache with a pool of its own. At most two small entries are pinned
// at a time, so the free space always has a piece far larger than any
// Set's entry once the unpinned entries are gone: no Set may fail with
// ErrFull (nor with anything but the policy's rejection, or ErrTooLarge
// for an entry above a budget a Resize just set), nothing may hang, the
// budget holds throughout, and when all is quiet no promise, stall or
// reservation is left and the pool holds exactly the entries' bytes.
// Then Close races with the Sets: each ends with nil or ErrClosed, and
// Close releases the pool.
func TestTwoStepSetsWithFewPinsNeverFull9(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	rounds := 3
	if slow {
		rounds = 1
	}
	for round := range rounds {
		c, err := New(64<<10, &Options{MaxBudget: 128 << 10})
		if err != nil {
			t.Fatal(err)
		}
		var (
			stop, stopSets, stopWatch atomic.Bool
			wg, sets                  sync.WaitGroup
			errs                      = make(chan error, 16)
		)
		fail := func(err error) {
			select {
			case errs <- err:
			default:
			}
		}
		for g := range 3 {
			sets.Add(1)
			go func() {
				defer sets.Done()
				r := rand.New(rand.NewPCG(9, uint64(round*10+g)))
				for ver := 1; !stopSets.Load(); ver++ {
					i := r.IntN(40)
					err := c.Set(key(i), value(i, ver, lockedCopyMax+r.IntN(5<<10)))
					switch {
					case err == nil, errors.Is(err, ErrRejected), errors.Is(err, ErrTooLarge):
					case errors.Is(err, ErrClosed) && stop.Load():
						return
					default:
						fail(fmt.Errorf("two-step Set with at most 2 small pins: %w", err))
						return
					}
				}
			}()
		}
		wg.Add(3)
		go func() { // deletes and gets
			defer wg.Done()
			r := rand.New(rand.NewPCG(9, 100))
			var buf []byte
			for !stop.Load() {
				i := r.IntN(40)
				if r.IntN(2) == 0 {
					if _, err := c.Delete(key(i)); err != nil {
						fail(err)
						return
					}
				} else if b, ok := c.Get(buf[:0], key(i)); ok {
					if !valid(b, i) {
						fail(fmt.Errorf("key %d: torn or foreign value", i))
						return
					}
					buf = b
				}
			}
		}()
		go func() { // small entries, pinned two at a time
			defer wg.Done()
			r := rand.New(rand.NewPCG(9, 101))
			for !stop.Load() {
				var hs []Handle
				for j := range 2 {
					k := key(1000 + r.IntN(8) + 8*j)
					if err := c.Set(k, value(1000, 1, 100)); err != nil && !errors.Is(err, ErrRejected) {
						fail(err)
						return
					}
					if _, h, err := c.Pin(k); err == nil {
						hs = append(hs, h)
					}
				}
				time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
				for _, h := range hs {
					if err := h.Release(); err != nil {
						fail(err)
						return
					}
				}
			}
		}()
		go func() { // resizes: shrinking with pins out compacts, without rebuilds
			defer wg.Done()
			r := rand.New(rand.NewPCG(9, 102))
			sizes := []int{24 << 10, 64 << 10, 128 << 10}
			for !stop.Load() {
				err := c.Resize(sizes[r.IntN(len(sizes))])
				if err != nil && !errors.Is(err, ErrBusy) {
					fail(fmt.Errorf("resize: %w", err))
					return
				}
				time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
			}
		}()
		var watchErr error
		done := make(chan struct{})
		go func() { defer close(done); watchErr = budgetWatch8(c, &stopWatch) }()
		within(t, "two-step Sets with few pins", func() {
			time.Sleep(dur8())
			stopSets.Store(true)
			sets.Wait()
			stop.Store(true)
			wg.Wait()
			stopWatch.Store(true)
			<-done
		})
		if watchErr != nil {
			t.Error(watchErr)
		}
		quiet8(t, c)
		poolMatches9(t, c)
		if st := c.Stats(); st.Handles != 0 {
			t.Errorf("handles out after every release: %+v", st)
		}
		// Close racing with two-step Sets.
		stopSets.Store(false)
		for g := range 3 {
			sets.Add(1)
			go func() {
				defer sets.Done()
				for ver := 1; ; ver++ {
					err := c.Set(key(g), value(g, ver, 3<<10))
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, ErrRejected) {
						fail(fmt.Errorf("Set racing Close: %w", err))
						return
					}
				}
			}()
		}
		within(t, "Close racing two-step Sets", func() {
			time.Sleep(5 * time.Millisecond)
			if err := c.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
			sets.Wait()
		})
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if t.Failed() {
			return
		}
	}
}

// hit-ratio bounds measured below are for the plain build: the policy's
// replay is deterministic, but slow under the race detector and the checked
// build (TestPolicyHitRatio covers those).
func skipReplay9(t *testing.T) {
	if proc.Race || check.On || testing.Short() {
		t.Skip("replays a few million requests")
	}
}

// trace9 is a generated trace with the capacities it is replayed at.
type trace9 struct {
	name string
	keys []uint64
	caps []int
}

// traces9 returns synthetic traces of shapes the policy's own tests do not
// generate, each of 200,000 to 300,000 requests, from a fixed seed.
func traces9() []trace9 {
	r := rand.New(rand.NewPCG(9, 9))
	var out []trace9
	add := func(name string, keys []uint64, caps ...int) { out = append(out, trace9{name, keys, caps}) }
	zipf := func(s float64, universe uint64) func() uint64 { return rand.NewZipf(r, s, 1, universe-1).Uint64 }
	// Loops slightly larger than the cache.
	for _, l := range []int{105, 1050} {
		var k []uint64
		for len(k) < 200_000 {
			for i := range l {
				k = append(k, uint64(i))
			}
		}
		add(fmt.Sprintf("loop%d", l), k, l*100/105, l*100/110, l*100/125)
	}
	// A loop of 3,000 keys mixed half and half with zipf.
	{
		var k []uint64
		z, li := zipf(1.05, 50_000), 0
		for len(k) < 300_000 {
			if r.IntN(2) == 0 {
				k = append(k, uint64(li%3000)+1<<40)
				li++
			} else {
				k = append(k, z())
			}
		}
		add("loop3000+zipf", k, 1000, 3000, 3500, 4000)
	}
	// A hot set of 300 keys between short scans back and forth.
	{
		var k []uint64
		base := uint64(1 << 40)
		for len(k) < 300_000 {
			for range 200 {
				k = append(k, uint64(r.IntN(300)))
			}
			n := 50 + r.IntN(150)
			for rep := range 4 {
				for i := range n {
					j := i
					if rep%2 == 1 {
						j = n - 1 - i
					}
					k = append(k, base+uint64(j))
				}
			}
			base += uint64(n)
		}
		add("hot+zigzag", k, 250, 400, 600)
	}
	// A working set of 800 keys that fits, between scans of new keys.
	{
		var k []uint64
		scan := uint64(1 << 40)
		for len(k) < 300_000 {
			for range 1000 {
				k = append(k, uint64(r.IntN(800)))
			}
			for range 500 {
				k = append(k, scan)
				scan++
			}
		}
		add("ws800+scan", k, 900, 1500)
	}
	// Sweeps back and forth over 1,200 keys, a zipf key every third.
	{
		var k []uint64
		z := zipf(1.1, 5000)
		for len(k) < 300_000 {
			for rep := range 2 {
				for i := range 1200 {
					j := i
					if rep == 1 {
						j = 1199 - i
					}
					k = append(k, uint64(j)+1<<40)
					if r.IntN(3) == 0 {
						k = append(k, z())
					}
				}
			}
		}
		add("zigzag1200+zipf", k, 500, 1000, 1500)
	}
	// Three working sets of 1,500 keys in turn, 20,000 requests each.
	{
		var k []uint64
		for len(k) < 300_000 {
			set := uint64(len(k)/20_000%3) << 40
			for range 20_000 {
				k = append(k, set+uint64(r.IntN(1500)))
			}
		}
		add("ws-switch", k, 1000, 1600, 3500)
	}
	// Tiny caches: zipf over 200 keys, and 80% of requests re-referencing
	// a key |N(0, 6)| distinct keys back.
	{
		var k []uint64
		z := zipf(1.2, 200)
		for range 200_000 {
			k = append(k, z())
		}
		add("tiny-zipf200", k, 1, 2, 4, 8, 16)
		var rc, seen []uint64
		for range 200_000 {
			if len(seen) > 0 && r.Float64() < 0.8 {
				d := min(int(math.Abs(r.NormFloat64())*6), len(seen)-1)
				rc = append(rc, seen[len(seen)-1-d])
				continue
			}
			seen = append(seen, uint64(len(seen)))
			rc = append(rc, seen[len(seen)-1])
		}
		add("tiny-recency", rc, 1, 2, 4, 8, 16, 32)
	}
	return out
}

// beladyHitRatio replays keys through Belady's optimal policy (evict the
// key used farthest in the future) with capacity entries, and returns the
// hit ratio in %: no policy can do better.
func beladyHitRatio(keys []uint64, capacity int) float64 {
	next := make([]int, len(keys)) // the position of the key's next use; past the end if none, distinct
	last := map[uint64]int{}
	for i := len(keys) - 1; i >= 0; i-- {
		next[i] = len(keys) + i
		if j, ok := last[keys[i]]; ok {
			next[i] = j
		}
		last[keys[i]] = i
	}
	held := map[uint64]int{} // key -> its next use
	var far farthest9        // next uses of held keys, some stale
	hits := 0
	for i, k := range keys {
		if _, ok := held[k]; ok {
			hits++
		} else if len(held) >= capacity {
			for {
				top := heap.Pop(&far).(use9)
				if held[top.key] == top.next {
					delete(held, top.key)
					break
				}
			}
		}
		held[k] = next[i]
		heap.Push(&far, use9{next[i], k})
	}
	return 100 * float64(hits) / float64(len(keys))
}

// use9 is a key's next use; farthest9 is a max-heap of them.
type use9 struct {
	next int
	key  uint64
}

type farthest9 []use9

func (h farthest9) Len() int           { return len(h) }
func (h farthest9) Less(i, j int) bool { return h[i].next > h[j].next }
func (h farthest9) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *farthest9) Push(x any)        { *h = append(*h, x.(use9)) }
func (h *farthest9) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// gaps9 are the points of traces9 where the policy falls more than 1
// point below LRU, with the most it may (the gap measured, rounded up to
// the next half point, plus half a point: at aa4bbc0, and for the tiny
// caches once the margin had its floor of 4 exits, before which the window
// of an 8-entry cache never grew: 34.80 at 8 entries, 67.89 at 16). They
// are recency-driven: a hot set that moves (ws-switch, the scans of
// hot+zigzag) and tiny caches under pure recency, where the window, of one
// entry, grows too slowly and the duel keeps the older keys.
var gaps9 = map[string]float64{
	"hot+zigzag/250": 4.5, // lru 66.08, policy 62.17
	"ws-switch/1000": 4.5, // lru 64.50, policy 60.95
	"ws-switch/1600": 2.5, // lru 92.50, policy 90.42
	"tiny-recency/4": 8.5, // lru 30.88, policy 23.00
	"tiny-recency/8": 6.5, // lru 55.88, policy 50.08
}

// TestPolicyRound9Traces replays traces9 through the policy and requires
// it at most 1 point below LRU on every point (at most gaps9 on the known
// gaps), and on the loops slightly larger than the cache (where LRU hits
// nothing) at most 1.5 points below Belady's optimum: measured, it trails
// the optimum there by 0.18 to 0.92 (the policy at d9bb191 by up to 5.65).
func TestPolicyRound9Traces(t *testing.T) {
	skipReplay9(t)
	for _, tr := range traces9() {
		for _, c := range tr.caps {
			name := fmt.Sprintf("%s/%d", tr.name, c)
			lru, got := lruHitRatio(tr.keys, c), replayPolicy(t, tr.keys, c)
			slack, known := gaps9[name]
			if !known {
				slack = 1
			}
			if got < lru-slack {
				t.Errorf("%s: hit ratio %.2f%%, LRU %.2f%%: more than %.1f below", name, got, lru, slack)
			}
			if !strings.HasPrefix(name, "loop1") {
				t.Logf("%-22s lru %6.2f  policy %6.2f", name, lru, got)
				continue
			}
			opt := beladyHitRatio(tr.keys, c)
			t.Logf("%-22s lru %6.2f  policy %6.2f  optimum %6.2f", name, lru, got, opt)
			if got < opt-1.5 {
				t.Errorf("%s: hit ratio %.2f%%, the optimum %.2f%%: more than 1.5 below", name, got, opt)
			}
		}
	}
}
