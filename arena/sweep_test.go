package arena

// Stress tests of the per-P cache protocol (pcache.go): the fast paths under
// sweeps (Purge, Close, a full reservation), GOMAXPROCS moves and Close
// races. They run in every build; the per-P path is only active without
// -race and without -tags offheapcheck.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/proc"
)

// stressTime and stressRounds size the stress tests to about a second each;
// the race detector's build (which takes the lock for every call) does less.
var stressTime, stressRounds = time.Second, 5000

func init() {
	if proc.Race {
		stressTime, stressRounds = 300*time.Millisecond, 500
	}
}

// checkingWorker allocates and frees blocks of random small sizes, each filled
// with a seed of its own and checked before the free (see heldBlocks), so a
// block handed to two owners is seen. It returns when stop is closed, after
// freeing everything it holds.
func checkingWorker(a *Allocator, g int, stop <-chan struct{}, maxLive int) error {
	h := newHeldBlocks(g, 7)
	defer func() {
		for _, x := range h.live {
			_ = a.Free(x.b)
		}
	}()
	for i := 0; ; i++ {
		if i%64 == 0 {
			select {
			case <-stop:
				for len(h.live) > 0 {
					if err := h.free(a.Free); err != nil {
						return err
					}
				}
				return nil
			default:
			}
		}
		if len(h.live) < maxLive && h.rng.IntN(2) == 0 {
			n := 1 + h.rng.IntN(MaxSmall)
			if h.rng.IntN(4) != 0 {
				n = 1 + h.rng.IntN(64) // mostly a few hot classes
			}
			if err := h.allocate(a.Alloc, n); err != nil {
				return err
			}
			continue
		}
		if len(h.live) == 0 {
			continue
		}
		if err := h.free(a.Free); err != nil {
			return fmt.Errorf("goroutine %d: free: %w", g, err)
		}
	}
}

// TestFastPathsUnderPurgeCloseAndProcs runs many goroutines through the fast
// paths while another goroutine purges, fails to close, and changes
// GOMAXPROCS (including above maxProcs). Afterwards Stats must show nothing
// in use and Close must succeed.
func TestFastPathsUnderPurgeCloseAndProcs(t *testing.T) {
	a, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	sentinel, err := a.Alloc(100) // so Close cannot succeed before the workers hold blocks
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	const G = 24
	for g := range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := checkingWorker(a, g, stop, 40); err != nil {
				errs <- err
			}
		}()
	}
	procs := []int{1, 2, 3, 8, 1, 255, 256, 257, 300, 2, 64, 1}
	deadline := time.Now().Add(stressTime)
	for i := 0; time.Now().Before(deadline); i++ {
		switch i % 4 {
		case 0:
			a.Purge()
		case 1:
			if err := a.Close(); !errors.Is(err, ErrLeaked) {
				t.Errorf("Close while blocks are held: %v", err)
			}
		case 2:
			runtime.GOMAXPROCS(procs[(i/4)%len(procs)])
		case 3:
			_ = a.Stats()
		}
		time.Sleep(100 * time.Microsecond)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	if err := a.Free(sentinel); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.InUseBlocks != 0 || s.InUse != 0 {
		t.Errorf("after all frees: %v", s)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close after every block was freed: %v", err)
	}
}

// TestCloseRacingAllocFree: goroutines alloc and free single blocks until an
// Alloc fails; the main goroutine closes until Close succeeds. Every Alloc
// after a successful Close must fail with ErrClosed, every Free of a block
// that was handed out must succeed (Close cannot succeed while it is held),
// and nothing may crash.
func TestCloseRacingAllocFree(t *testing.T) {
	for round := range stressRounds / 100 {
		a, err := New(&Options{Reserve: 8 << 20})
		if err != nil {
			t.Fatal(err)
		}
		var closed, stop atomic.Bool
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					wasClosed := closed.Load()
					b, err := a.Alloc(1 + (g*13+i)%500)
					if err != nil {
						if !errors.Is(err, ErrClosed) {
							errs <- fmt.Errorf("alloc: %w", err)
						}
						return
					}
					if wasClosed {
						errs <- fmt.Errorf("round %d: Alloc succeeded after Close", round)
						return
					}
					fill(b, byte(g))
					if !holds(b, byte(g)) {
						errs <- fmt.Errorf("block changed under its owner")
					}
					if err := a.Free(b); err != nil {
						errs <- fmt.Errorf("free of a held block: %w", err)
						return
					}
				}
			}()
		}
		giveUp := time.Now().Add(50 * time.Millisecond) // then let the goroutines finish
		for {
			err := a.Close()
			if err == nil {
				closed.Store(true)
				break
			}
			if !errors.Is(err, ErrLeaked) {
				t.Fatalf("Close: %v", err)
			}
			if time.Now().After(giveUp) {
				stop.Store(true)
			}
			runtime.Gosched()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if _, err := a.Alloc(8); !errors.Is(err, ErrClosed) {
			t.Fatalf("Alloc after Close: %v", err)
		}
	}
}

// TestStatsExactAtRest: after goroutines on several Ps allocate and free
// with GOMAXPROCS moving, with a known number of blocks left held, Stats
// reports exactly that many in use.
func TestStatsExactAtRest(t *testing.T) {
	a := newAlloc(t, nil)
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	var held [][]byte
	var mu sync.Mutex
	for round, p := range []int{4, 1, 8, 2, 300, 3} {
		runtime.GOMAXPROCS(p)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine [][]byte
				for i := range 3000 {
					b, err := a.Alloc(1 + (g*7+i*13)%300)
					if err != nil {
						t.Error(err)
						return
					}
					mine = append(mine, b)
					if len(mine) > 20 {
						if err := a.Free(mine[0]); err != nil {
							t.Error(err)
							return
						}
						mine = mine[1:]
					}
				}
				mu.Lock()
				held = append(held, mine[:3]...)
				mu.Unlock()
				for _, b := range mine[3:] {
					if err := a.Free(b); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		wg.Wait()
		if s := a.Stats(); s.InUseBlocks != len(held) {
			t.Fatalf("round %d: InUseBlocks %d, want %d: %v", round, s.InUseBlocks, len(held), s)
		}
		if round%2 == 0 {
			a.Purge()
			if s := a.Stats(); s.InUseBlocks != len(held) || s.Shared != 0 {
				t.Fatalf("round %d after Purge: InUseBlocks %d, want %d: %v", round, s.InUseBlocks, len(held), s)
			}
		}
	}
	if err := a.Close(); !errors.Is(err, ErrLeaked) {
		t.Fatalf("Close with blocks held: %v", err)
	}
	for _, b := range held {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestExhaustedSweepsCaches: the reservation bounds the bytes of small blocks
// live at once (Options.Reserve; TestExhausted). Free blocks a per-P cache
// holds are not live, so an Alloc that finds the reservation full must take
// them back (and the pages they keep in use) before it reports ErrExhausted.
func TestExhaustedSweepsCaches(t *testing.T) {
	// KeepEmpty -1: no empty page is kept, so only caches can hold pages.
	a := newAlloc(t, &Options{Reserve: ArenaSize, KeepEmpty: -1})
	// One 1024-byte block, freed at once: nothing of that class is live.
	b, err := a.Alloc(1024)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	live, err := allocAll(a, 2048)
	s := a.Stats()
	freeAll(t, a, live)
	if !errors.Is(err, ErrExhausted) || len(live) != ArenaSize/2048 {
		t.Fatalf("Alloc(2048) failed after %d blocks (want %d), with %d bytes of other classes live: %v\nstats at failure: %v",
			len(live), ArenaSize/2048, s.InUse-len(live)*2048, err, s)
	}
}

// TestMixedCallsUnderSweeps mixes shared Alloc/Free, Realloc, user Caches
// handing blocks across goroutines, Purge, failed Close, runtime.GC and GOMAXPROCS
// changes from several goroutines at once.
func TestMixedCallsUnderSweeps(t *testing.T) {
	a, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	sentinel, err := a.Alloc(100) // so Close cannot succeed while busy
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	handoff := make(chan []byte, 256)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g%3 == 0 {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			var c *Cache
			alloc, free := a.Alloc, a.Free
			if g%4 == 1 {
				c = a.NewCache()
				alloc, free = c.Alloc, c.Free
			}
			type blk struct {
				b    []byte
				seed byte
			}
			var live []blk
			for i := 0; ; i++ {
				select {
				case <-stop:
					for _, x := range live {
						if !holds(x.b, x.seed) {
							errs <- fmt.Errorf("g%d: lost data", g)
						}
						if err := free(x.b); err != nil {
							errs <- err
						}
					}
					if c != nil {
						c.Close()
					}
					return
				default:
				}
				switch op := rng.IntN(10); {
				case op < 4 && len(live) < 64:
					n := rng.IntN(MaxSmall + 1)
					b, err := alloc(n)
					if err != nil {
						errs <- err
						return
					}
					seed := byte(rng.Uint32())
					fill(b, seed)
					live = append(live, blk{b, seed})
				case op < 5 && len(live) > 0:
					j := rng.IntN(len(live))
					x := live[j]
					if !holds(x.b, x.seed) {
						errs <- fmt.Errorf("g%d: lost data before realloc", g)
						return
					}
					nb, err := a.Realloc(x.b, rng.IntN(MaxSmall+1))
					if err != nil {
						errs <- err
						return
					}
					m := min(len(x.b), len(nb))
					if !holds(nb[:m], x.seed) {
						errs <- fmt.Errorf("g%d: realloc lost data", g)
						return
					}
					fill(nb, x.seed)
					live[j] = blk{nb, x.seed}
				case op < 6 && len(live) > 0:
					x := live[len(live)-1]
					live = live[:len(live)-1]
					if !holds(x.b, x.seed) {
						errs <- fmt.Errorf("g%d: lost data before handoff", g)
						return
					}
					select {
					case handoff <- x.b:
					default:
						if err := free(x.b); err != nil {
							errs <- err
							return
						}
					}
				case op < 7:
					select {
					case b := <-handoff:
						if err := free(b); err != nil {
							errs <- err
							return
						}
						if c != nil && i%5 == 0 {
							if err := free(b); !errors.Is(err, ErrDoubleFree) {
								errs <- fmt.Errorf("double free through own cache: %v", err)
								return
							}
						}
					default:
					}
				case len(live) > 0:
					j := rng.IntN(len(live))
					x := live[j]
					live[j] = live[len(live)-1]
					live = live[:len(live)-1]
					if !holds(x.b, x.seed) {
						errs <- fmt.Errorf("g%d: lost data", g)
						return
					}
					if err := free(x.b); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	var cwg sync.WaitGroup
	for h := range 3 {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			procs := []int{1, 2, 5, 257, 3, 256, 1, 40}
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				switch h {
				case 0:
					runtime.GOMAXPROCS(procs[i%len(procs)])
					time.Sleep(200 * time.Microsecond)
				case 1:
					a.Purge()
					if err := a.Close(); !errors.Is(err, ErrLeaked) {
						errs <- fmt.Errorf("Close while busy: %v", err)
						return
					}
				case 2:
					if i%50 == 0 {
						runtime.GC()
					}
					_ = a.Stats()
				}
			}
		}()
	}
	time.Sleep(stressTime)
	close(stop)
	wg.Wait()
	cwg.Wait()
	close(handoff)
	for b := range handoff {
		if err := a.Free(b); err != nil {
			t.Error(err)
		}
	}
	if err := a.Free(sentinel); err != nil {
		t.Error(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	// Cached is not checked: closed Caches can leave a stale count (see
	// TestCacheFlushClearsCount).
	if s := a.Stats(); s.InUseBlocks != 0 {
		t.Errorf("after all frees: %v", s)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close after every block was freed: %v", err)
	}
}

// TestExhaustedSweepsRemovedPs: free blocks of the very class requested sit
// in the cache of a P that GOMAXPROCS removed, where no fast path reaches
// them; an Alloc that finds the reservation full must sweep them back.
func TestExhaustedSweepsRemovedPs(t *testing.T) {
	if !perP {
		t.Skip("no per-P caches in this build")
	}
	a := newAlloc(t, &Options{Reserve: ArenaSize, KeepEmpty: -1})
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	k := classOf(2048)
	held := func(pid int) int {
		a.mu.Lock()
		defer a.mu.Unlock()
		if c := a.pcs[pid].Load(); c != nil {
			return c.held[k]
		}
		return 0
	}
	for round := 0; held(1) == 0; round++ {
		if round == 1000 {
			t.Skip("no goroutine ran on P 1")
		}
		churn(t, a, 4, 100, func(int, int) int { return 2048 })
	}
	runtime.GOMAXPROCS(1) // P 1 and its cache are gone until GOMAXPROCS rises
	stranded := held(1)
	live, err := allocAll(a, 2048)
	freeAll(t, a, live)
	if !errors.Is(err, ErrExhausted) || len(live) != ArenaSize/2048 {
		t.Fatalf("Alloc(2048) failed after %d blocks (want %d) while P 1's cache held %d free 2048-byte blocks: %v",
			len(live), ArenaSize/2048, stranded, err)
	}
}

// freedBlock returns a new allocator and a block it handed out and took back.
func freedBlock(t *testing.T) (*Allocator, []byte) {
	t.Helper()
	a, err := New(&Options{Reserve: ArenaSize})
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.Alloc(64)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// TestStaleFreeRacingClose: a Free of a block already freed (a double
// free) racing a Close that succeeds must return ErrDoubleFree or ErrClosed,
// never crash. (It crashed when Free's error path read the page's metadata
// without the lock just after a Close had unmapped it.)
func TestStaleFreeRacingClose(t *testing.T) {
	for round := range stressRounds {
		a, b := freedBlock(t)
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for {
				err := a.Free(b)
				if errors.Is(err, ErrClosed) {
					return
				}
				if !errors.Is(err, ErrDoubleFree) {
					t.Errorf("round %d: stale Free: %v", round, err)
					return
				}
			}
		}()
		close(start)
		for i := 0; i < round%8; i++ {
			runtime.Gosched()
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}

// TestCacheFlushClearsCount: a Cache that refilled a class and then handed
// out every block of it has an empty stack but has told the allocator it
// holds a batch (pub). Flush must clear that count even so, or Stats reports
// cached bytes with no cache open and InUseBlocks misses blocks users hold.
func TestCacheFlushClearsCount(t *testing.T) {
	a := newAlloc(t, nil)
	c := a.NewCache()
	var bs [][]byte
	for range cacheBatch { // one refill, then the stack is empty
		b, err := c.Alloc(64)
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	// The user holds cacheBatch blocks and no cache is open.
	if s := a.Stats(); s.InUseBlocks != len(bs) || s.Cached != 0 {
		t.Errorf("holding %d blocks, cache closed: InUseBlocks %d, Cached %d B (want %d, 0): %v", len(bs), s.InUseBlocks, s.Cached, len(bs), s)
	}
	for _, b := range bs {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	if s := a.Stats(); s.InUseBlocks != 0 || s.Cached != 0 {
		t.Errorf("all freed, cache closed: InUseBlocks %d, Cached %d B (want 0, 0): %v", s.InUseBlocks, s.Cached, s)
	}
}

// TestStaleCacheFreeRacingClose is TestStaleFreeRacingClose through an empty
// Cache, which reads the page's metadata with no lock and no pin in the
// normal build. (It crashed when Close unmapped the metadata under the
// reader; the normal build now keeps it mapped until the Allocator is
// unreachable, and the checked build reads it only under the lock.)
func TestStaleCacheFreeRacingClose(t *testing.T) {
	for round := range stressRounds {
		a, b := freedBlock(t)
		c := a.NewCache()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				err := c.Free(b)
				if errors.Is(err, ErrClosed) {
					return
				}
				if !errors.Is(err, ErrDoubleFree) {
					t.Errorf("round %d: stale Cache.Free: %v", round, err)
					return
				}
			}
		}()
		for i := 0; i < round%8; i++ {
			runtime.Gosched()
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
}
