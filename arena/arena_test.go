package arena

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/vmem"
)

func newAlloc(t testing.TB, o *Options) *Allocator {
	t.Helper()
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// snapshot is the allocator's state as Stats shows it, minus what the
// kernel decides (resident bytes).
func snapshot(a *Allocator) string {
	s := a.Stats()
	s.Resident = 0
	return fmt.Sprintf("%+v", s)
}

func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = seed + byte(i)
	}
}

func holds(b []byte, seed byte) bool {
	for i := range b {
		if b[i] != seed+byte(i) {
			return false
		}
	}
	return true
}

func TestBlockIndexExact(t *testing.T) {
	for c := 1; c < nClasses; c++ {
		size := classSize[c]
		for off := 0; off < pageSize; off++ {
			idx := blockIndex(uintptr(off), c)
			aligned := idx*uintptr(size) == uintptr(off)
			if aligned != (off%size == 0) || (off%size == 0 && int(idx) != off/size) {
				t.Fatalf("class %d size %d off %d: index %d", c, size, off, idx)
			}
		}
	}
}

func TestIsBlockStartExact(t *testing.T) {
	for c := 1; c < nClasses; c++ {
		for off := range pageSize {
			if isBlockStart(uintptr(off), c) != (off%classSize[c] == 0) {
				t.Fatalf("class %d size %d off %d: isBlockStart %v", c, classSize[c], off, !(off%classSize[c] == 0))
			}
		}
	}
}

func TestClassOf(t *testing.T) {
	for n := 0; n <= MaxSmall; n++ {
		c := classOf(n)
		if classSize[c] < max(n, 1) || (c > 1 && classSize[c-1] >= n) {
			t.Fatalf("classOf(%d) = %d (size %d)", n, c, classSize[c])
		}
	}
}

func TestAllocZeroedAndFree(t *testing.T) {
	a := newAlloc(t, nil)
	sizes := []int{0, 1, 15, 16, 17, 100, 255, 256, 511, 512, 513, 700, 1000, 2048, 2049, 5000, 1 << 20}
	var live [][]byte
	for round := range 3 {
		for i, n := range sizes {
			b, err := a.Alloc(n)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != n || cap(b) != n {
				t.Fatalf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
			}
			for j, x := range b {
				if x != 0 {
					t.Fatalf("round %d Alloc(%d): byte %d is %#x, not zero", round, n, j, x)
				}
			}
			fill(b, byte(i))
			live = append(live, b)
		}
		for i, b := range live {
			if !holds(b, byte(i%len(sizes))) {
				t.Fatalf("block %d lost its data", i)
			}
			if err := a.Free(b); err != nil {
				t.Fatal(err)
			}
		}
		live = live[:0]
	}
	if s := a.Stats(); s.InUseBlocks != 0 || s.InUse != 0 || s.LargeBlocks != 0 {
		t.Fatalf("after freeing all: %v", s)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadSizes(t *testing.T) {
	a := newAlloc(t, nil)
	before := snapshot(a)
	if _, err := a.Alloc(-1); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("Alloc(-1): %v", err)
	}
	if _, err := a.Alloc(MaxAlloc + 1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Alloc(MaxAlloc+1): %v", err)
	}
	b, _ := a.Alloc(10)
	mid := snapshot(a)
	if _, err := a.Realloc(b, -5); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("Realloc(-5): %v", err)
	}
	if after := snapshot(a); after != mid {
		t.Fatalf("bad Realloc changed state:\n%s\n%s", mid, after)
	}
	_ = a.Free(b)
	if after := snapshot(a); after == before {
		return // the page may be kept; only the counts must match
	}
	if _, err := New(&Options{Reserve: 100}); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("New with a tiny reserve: %v", err)
	}
}

// TestDoubleAndForeignFree proves bad frees are reported and change nothing.
func TestDoubleAndForeignFree(t *testing.T) {
	a := newAlloc(t, nil)
	other := newAlloc(t, nil)
	c := a.NewCache()
	defer c.Close()
	keep, _ := a.Alloc(64)   // keeps the page in use
	b, _ := a.Alloc(64)      // freed below
	big, _ := a.Alloc(10000) // a large block
	ob, _ := other.Alloc(64) // another allocator's block
	cb, _ := c.Alloc(48)     // a block the cache will hold
	defer other.Free(ob)
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(big); err != nil {
		t.Fatal(err)
	}
	if err := c.Free(cb); err != nil {
		t.Fatal(err)
	}
	heap := make([]byte, 64)
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"double", b, ErrDoubleFree},
		{"double large", big, ErrDoubleFree},
		{"double held by cache", cb, ErrDoubleFree},
		{"nil", nil, ErrForeign},
		{"go heap", heap, ErrForeign},
		{"other allocator", ob, ErrForeign},
		{"inside a block", keep[16:], ErrForeign},
		{"inside a block by one", keep[1:], ErrForeign},
		{"never used page", a.block(uintptr(ArenaSize-pageSize), 16), ErrDoubleFree},
	}
	for _, tc := range cases {
		for _, how := range []string{"allocator", "cache"} {
			before := snapshot(a)
			var err error
			if how == "allocator" {
				err = a.Free(tc.b)
			} else {
				err = c.Free(tc.b)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("%s free via %s: got %v, want %v", tc.name, how, err, tc.want)
			}
			if after := snapshot(a); after != before {
				t.Errorf("%s free via %s changed state:\n%s\n%s", tc.name, how, before, after)
			}
			if tc.b == nil {
				continue // Realloc(nil, n) is Alloc
			}
			if _, err := a.Realloc(tc.b, 10); !errors.Is(err, tc.want) {
				t.Errorf("%s realloc: got %v, want %v", tc.name, err, tc.want)
			}
		}
	}
	if !holds(keep, 0) && keep[0] != 0 {
		t.Fatal("live block touched")
	}
	if err := a.Free(keep); err != nil {
		t.Fatal(err)
	}
}

// TestErrorText pins the shape of arena's errors: the package and the
// allocator's name, the operation and the slice's address, the sentinel.
func TestErrorText(t *testing.T) {
	a := newAlloc(t, &Options{Name: "pinned"})
	keep, _ := a.Alloc(64)
	b, _ := a.Alloc(64)
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	err := a.Free(b)
	if want := fmt.Sprintf(`arena "pinned": free %#x: double free`, addrOf(b)); err == nil || err.Error() != want {
		t.Fatalf("double free: %v, want %s", err, want)
	}
	_ = a.Free(keep)
}

func TestSliceReachingPastBlock(t *testing.T) {
	a := newAlloc(t, nil)
	b, _ := a.Alloc(64)
	c, _ := a.Alloc(64)
	// Join two adjacent blocks into one slice the allocator never handed out.
	joined := a.block(uintptr(addrOf(b)-uintptr(a.base)), 128)
	if addrOf(c) == addrOf(b)+64 {
		before := snapshot(a)
		if err := a.Free(joined); !errors.Is(err, ErrForeign) {
			t.Fatalf("free of two blocks as one: %v", err)
		}
		if after := snapshot(a); after != before {
			t.Fatal("state changed")
		}
	}
	_ = a.Free(b)
	_ = a.Free(c)
}

// TestFreeShortenedSlice frees blocks through slices whose capacity is
// below their block's (and of a smaller class): the fast paths take the
// class from the capacity and must fall back to the page's when it is wrong.
func TestFreeShortenedSlice(t *testing.T) {
	a := newAlloc(t, nil)
	c := a.NewCache()
	defer c.Close()
	for _, n := range []int{16, 48, 64, 80, 200, 512, 640, 2048} {
		for _, short := range []int{0, 1, 16, n / 2, n - 1} {
			for _, via := range []string{"allocator", "cache"} {
				free := a.Free
				if via == "cache" {
					free = c.Free
				}
				b, err := a.Alloc(n)
				if err != nil {
					t.Fatal(err)
				}
				if err := free(b[:short:short]); err != nil {
					t.Fatalf("free of a %d-byte block as %d bytes via %s: %v", n, short, via, err)
				}
				if err := free(b); !errors.Is(err, ErrDoubleFree) {
					t.Fatalf("second free of a %d-byte block via %s: %v", n, via, err)
				}
			}
		}
	}
}

// TestFreeAtSmallerClassStart frees a slice that starts inside a block, at
// an offset where a block of the smaller class its capacity names would
// start, and whose state granule holds the state of a block that is
// allocated: the claim must fail on the class the state byte names.
func TestFreeAtSmallerClassStart(t *testing.T) {
	a := newAlloc(t, nil)
	c := a.NewCache()
	defer c.Close()
	var blocks [][]byte
	at := map[uintptr]bool{}
	for range 2 * pageSize / 80 {
		b, _ := a.Alloc(80)
		blocks = append(blocks, b)
		at[addrOf(b)-uintptr(a.base)] = true
	}
	tried := 0
	for off := range at {
		// The first 64-byte boundary inside the block whose granule holds
		// the start of the next block, allocated too.
		x := (off + 16 + 63) &^ 63
		if x >= off+80 || !at[off+80] || (off+80)&pageMask == 0 {
			continue
		}
		tried++
		stray := a.block(x, 64)
		for _, free := range []func([]byte) error{a.Free, c.Free} {
			before := snapshot(a)
			if err := free(stray); !errors.Is(err, ErrForeign) {
				t.Fatalf("free inside a block at a 64-byte class start: %v", err)
			}
			if after := snapshot(a); after != before {
				t.Fatalf("state changed:\n%s\n%s", before, after)
			}
		}
	}
	if tried == 0 {
		t.Fatal("no two adjacent blocks")
	}
	for _, b := range blocks {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFreeReleasedPageIsDoubleFree(t *testing.T) {
	a := newAlloc(t, &Options{KeepEmpty: -1, ReleaseBatch: 1})
	b, _ := a.Alloc(32)
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(b); !errors.Is(err, ErrDoubleFree) {
		t.Fatalf("free of a block in a released page: %v", err)
	}
	if err := a.NewCache().Free(b); !errors.Is(err, ErrDoubleFree) {
		t.Fatalf("cache free of a block in a released page: %v", err)
	}
}

func TestRealloc(t *testing.T) {
	a := newAlloc(t, nil)
	b, err := a.Realloc(nil, 10)
	if err != nil || len(b) != 10 {
		t.Fatal(b, err)
	}
	fill(b, 7)
	for _, n := range []int{12, 16, 5, 100, 600, 3000, 100000, 40, 0, 33} {
		old := len(b)
		nb, err := a.Realloc(b, n)
		if err != nil {
			t.Fatalf("Realloc to %d: %v", n, err)
		}
		if len(nb) != n || cap(nb) != n {
			t.Fatalf("Realloc to %d: len %d cap %d", n, len(nb), cap(nb))
		}
		k := min(old, n)
		if !holds(nb[:k], 7) {
			t.Fatalf("Realloc from %d to %d lost data", old, n)
		}
		for _, x := range nb[k:] {
			if x != 0 {
				t.Fatalf("Realloc from %d to %d: new bytes not zero", old, n)
			}
		}
		fill(nb, 7)
		b = nb
	}
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	if s := a.Stats(); s.InUseBlocks != 0 {
		t.Fatalf("leak after reallocs: %v", s)
	}
}

func TestCloseReportsLeaks(t *testing.T) {
	a, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := a.Alloc(100) // class 112
	b2, _ := a.Alloc(3000)
	err = a.Close()
	if !errors.Is(err, ErrLeaked) {
		t.Fatalf("Close with live blocks: %v", err)
	}
	want := fmt.Sprintf("2 blocks (%d bytes)", 112+vmem.RoundUp(3000))
	if !contains(err.Error(), want) {
		t.Fatalf("leak report %q does not say %q", err, want)
	}
	// Still usable.
	b3, err := a.Alloc(8)
	if err != nil {
		t.Fatal(err)
	}
	c := a.NewCache()
	b4, _ := c.Alloc(8)
	_ = c.Free(b4)
	if err := a.Close(); !errors.Is(err, ErrLeaked) || !contains(err.Error(), "held by caches") {
		t.Fatalf("Close with a cache holding blocks: %v", err)
	}
	c.Flush()
	for _, b := range [][]byte{b1, b2, b3} {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Alloc(8); !errors.Is(err, ErrClosed) {
		t.Fatalf("Alloc after Close: %v", err)
	}
	if err := a.Free(b1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Free after Close: %v", err)
	}
	if err := c.Free(b1); !errors.Is(err, ErrClosed) {
		t.Fatalf("cache Free after Close: %v", err)
	}
	if _, err := c.Alloc(8); !errors.Is(err, ErrClosed) {
		t.Fatalf("cache Alloc after Close: %v", err)
	}
	if err := a.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if s := a.Stats(); s.Mapped != 0 || s.Resident != 0 || s.InUseBlocks != 0 {
		t.Fatalf("Stats after Close: %v", s)
	}
	a.Purge() // does nothing, and does not fail
	if err := c.Close(); err != nil {
		t.Fatalf("closing a flushed cache after its allocator: %v", err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// allocAll allocates blocks of n bytes until Alloc fails, and returns them
// and the error.
func allocAll(a *Allocator, n int) ([][]byte, error) {
	var live [][]byte
	for {
		b, err := a.Alloc(n)
		if err != nil {
			return live, err
		}
		live = append(live, b)
	}
}

// freeAll frees blocks; an error fails t.
func freeAll(t *testing.T, a *Allocator, blocks [][]byte) {
	t.Helper()
	for _, b := range blocks {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
}

func TestExhausted(t *testing.T) {
	a := newAlloc(t, &Options{Reserve: ArenaSize})
	live, err := allocAll(a, 2048)
	freeAll(t, a, live)
	if !errors.Is(err, ErrExhausted) || len(live) != ArenaSize/2048 {
		t.Fatalf("after %d blocks: %v", len(live), err)
	}
}

// TestRSSFalls checks that freed memory leaves the process at once: empty
// arenas at once, free pages inside partly used arenas in batches.
func TestRSSFalls(t *testing.T) {
	if check.On {
		t.Skip("the checked build poisons freed blocks; resident figures differ")
	}
	a := newAlloc(t, nil)
	const n = 64 << 20 / 64 // 64 MiB of 64-byte blocks
	live := make([][]byte, n)
	for i := range live {
		b, err := a.Alloc(64)
		if err != nil {
			t.Fatal(err)
		}
		b[0] = 1
		live[i] = b
	}
	full := a.Stats().Resident
	if full < 60<<20 {
		t.Fatalf("resident after 64 MiB of blocks: %d", full)
	}
	for i, b := range live {
		if i%1000 == 0 {
			continue // survivors: one in 1000
		}
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	s := a.Stats()
	floor := (n/1000 + 1) * pageSize
	if s.Resident > floor+2<<20 {
		t.Fatalf("resident after freeing all but 1 in 1000: %d MiB, floor %d MiB (%v)", s.Resident>>20, floor>>20, s)
	}
	for i := 0; i < n; i += 1000 {
		if err := a.Free(live[i]); err != nil {
			t.Fatal(err)
		}
	}
	// Only the spare arena stays, the one of the empty page the class keeps,
	// and those holding blocks the per-P caches keep (up to one arena each)
	// until Purge.
	if s := a.Stats(); s.Resident > 2<<20 || s.Arenas > 2+s.Shared/64 {
		t.Fatalf("resident after freeing all: %d KiB (%v)", s.Resident>>10, s)
	}
	a.Purge()
	if s := a.Stats(); s.Resident != 0 || s.PagesDirty != 0 || s.Purges != 1 {
		t.Fatalf("after Purge: %v", s)
	}
}

func TestPurgeKeepsLiveBlocks(t *testing.T) {
	a := newAlloc(t, nil)
	var live [][]byte
	for i := range 3000 {
		b, _ := a.Alloc(16 + i%200)
		fill(b, byte(i))
		live = append(live, b)
	}
	for i := range live {
		if i%3 != 0 {
			_ = a.Free(live[i])
		}
	}
	a.Purge()
	for i := 0; i < len(live); i += 3 {
		if !holds(live[i], byte(i)) {
			t.Fatalf("block %d lost data after Purge", i)
		}
		_ = a.Free(live[i])
	}
	if s := a.Stats(); s.InUseBlocks != 0 {
		t.Fatal(s)
	}
}

// TestConcurrent has 8 goroutines allocating, verifying and freeing, half
// through the shared allocator and half through their own caches, passing
// some blocks to one another to free.
func TestConcurrent(t *testing.T) {
	a := newAlloc(t, nil)
	handoff := make(chan []byte, 64)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- worker(a, g, handoff)
		}()
	}
	wg.Wait()
	close(handoff)
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for b := range handoff {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	if s := a.Stats(); s.InUseBlocks != 0 || s.Cached != 0 {
		t.Fatalf("after all goroutines: %v", s)
	}
}

func worker(a *Allocator, g int, handoff chan []byte) error {
	h := newHeldBlocks(g, 1)
	var c *Cache
	alloc, free := a.Alloc, a.Free
	if g%2 == 1 {
		c = a.NewCache()
		defer c.Close()
		alloc, free = c.Alloc, c.Free
	}
	for i := range 3000 {
		if len(h.live) < 200 && h.rng.IntN(3) != 0 {
			n := h.rng.IntN(600)
			if h.rng.IntN(50) == 0 {
				n = 3000 + h.rng.IntN(5000)
			}
			if err := h.allocate(alloc, n); err != nil {
				return err
			}
			continue
		}
		if len(h.live) == 0 {
			continue
		}
		b, err := h.take()
		if err != nil {
			return err
		}
		select {
		case handoff <- b:
			continue
		default:
		}
		if err := free(b); err != nil {
			return err
		}
		// A second free is surely a double free only while no other goroutine
		// can have been handed the block: when it sits in this one's cache.
		if c != nil && cap(b) <= MaxSmall && i%7 == 0 {
			if err := free(b); !errors.Is(err, ErrDoubleFree) {
				return fmt.Errorf("goroutine %d: double free: %v", g, err)
			}
		}
	}
	for _, x := range h.live {
		if err := free(x.b); err != nil {
			return err
		}
	}
	return nil
}

// churn has goroutines each allocate and free pairs blocks through the
// shared Allocator, the i-th of goroutine g of size(g, i) bytes, and waits
// for them; errors fail t.
func churn(t *testing.T, a *Allocator, goroutines, pairs int, size func(g, i int) int) {
	t.Helper()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range pairs {
				b, err := a.Alloc(size(g, i))
				if err == nil {
					err = a.Free(b)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// heldBlocks is what a test goroutine holds: blocks filled with a seed of
// their own and checked when let go, so a block handed to two owners, or
// changed under its owner, is seen.
type heldBlocks struct {
	g    int
	rng  *rand.Rand
	live []heldBlock
}

type heldBlock struct {
	b    []byte
	seed byte
}

func newHeldBlocks(g int, stream uint64) *heldBlocks {
	return &heldBlocks{g: g, rng: rand.New(rand.NewPCG(uint64(g), stream))}
}

// add checks that b came zeroed and fills it with a fresh seed.
func (h *heldBlocks) add(b []byte) error {
	for _, x := range b {
		if x != 0 {
			return fmt.Errorf("goroutine %d: block not zeroed", h.g)
		}
	}
	seed := byte(h.rng.Uint32())
	fill(b, seed)
	h.live = append(h.live, heldBlock{b, seed})
	return nil
}

// allocate allocates n bytes with alloc and adds the block.
func (h *heldBlocks) allocate(alloc func(int) ([]byte, error), n int) error {
	b, err := alloc(n)
	if err != nil {
		return err
	}
	return h.add(b)
}

// free takes a random block and frees it with free.
func (h *heldBlocks) free(free func([]byte) error) error {
	b, err := h.take()
	if err == nil {
		err = free(b)
	}
	return err
}

// take removes a random block, checking it kept its data.
func (h *heldBlocks) take() ([]byte, error) {
	j := h.rng.IntN(len(h.live))
	x := h.live[j]
	h.live[j] = h.live[len(h.live)-1]
	h.live = h.live[:len(h.live)-1]
	if !holds(x.b, x.seed) {
		return nil, fmt.Errorf("goroutine %d: block lost its data", h.g)
	}
	return x.b, nil
}

func TestHotPathsAllocateNothing(t *testing.T) {
	a := newAlloc(t, nil)
	c := a.NewCache()
	defer c.Close()
	for _, tc := range []struct {
		name string
		f    func() error
	}{
		{"shared", func() error {
			b, err := a.Alloc(100)
			if err != nil {
				return err
			}
			return a.Free(b)
		}},
		{"cache", func() error {
			b, err := c.Alloc(100)
			if err != nil {
				return err
			}
			return c.Free(b)
		}},
	} {
		var err error
		if n := testing.AllocsPerRun(1000, func() { err = tc.f() }); n != 0 || err != nil {
			t.Errorf("%s alloc/free: %v Go allocations per run, err %v", tc.name, n, err)
		}
	}
}

func TestCheckedBuildPoisons(t *testing.T) {
	a := newAlloc(t, &Options{KeepEmpty: 1})
	keep, _ := a.Alloc(64)
	b, _ := a.Alloc(64)
	view := b
	_ = a.Free(b)
	if check.On && view[20] != check.Poison {
		t.Fatalf("freed block not poisoned: %#x", view[20])
	}
	if !check.On && view[20] != 0 {
		t.Fatalf("freed block changed beyond its tag: %#x", view[20])
	}
	_ = a.Free(keep)
}

// TestFreePastLastBlock frees an address aligned to the class size but past
// the last whole block of its page: not a block.
func TestFreePastLastBlock(t *testing.T) {
	a := newAlloc(t, nil)
	b, _ := a.Alloc(48)
	off := uintptr(addrOf(b) - uintptr(a.base))
	page := off &^ uintptr(pageSize-1)
	tail := page + uintptr(nBlocks[classOf(48)]*48)
	before := snapshot(a)
	for _, free := range []func([]byte) error{a.Free, a.NewCache().Free} {
		if err := free(a.block(tail, 16)); !errors.Is(err, ErrForeign) {
			t.Fatalf("free past the last block: %v", err)
		}
	}
	if after := snapshot(a); after != before {
		t.Fatal("state changed")
	}
	_ = a.Free(b)
}

// TestSharedContention has 8 goroutines allocate and free blocks of one
// class through the shared Allocator at once, moving blocks between the per-P
// caches and the pages in every interleaving; each goroutine checks its
// blocks stay its own.
func TestSharedContention(t *testing.T) {
	a := newAlloc(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var held [3][]byte
			for i := range 5000 {
				for k := range held {
					b, err := a.Alloc(48)
					if err != nil {
						errs <- err
						return
					}
					for j := range b {
						b[j] = byte(g)
					}
					held[k] = b
				}
				for k, b := range held {
					for _, x := range b {
						if x != byte(g) {
							errs <- fmt.Errorf("goroutine %d round %d: block %d shared with another goroutine", g, i, k)
							return
						}
					}
					if err := a.Free(b); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := a.Stats(); s.InUseBlocks != 0 || s.Shared > cacheMax*48*maxProcs {
		t.Fatalf("after the goroutines: %v", s)
	}
	a.Purge()
	if s := a.Stats(); s.Shared != 0 || s.PagesInUse != 0 {
		t.Fatalf("after Purge: %v", s)
	}
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []Options{{Reserve: 100}, {Reserve: MaxReserve + ArenaSize}, {ReleaseBatch: -1},
		{LargeReserve: -1}, {LargeReserve: 100}, {LargeReserve: MaxLargeReserve + 1<<30}} {
		if _, err := New(&o); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("New(%+v): %v", o, err)
		}
	}
}

// TestCyclicDoesNotThrash checks that allocating and freeing the same
// blocks over and over gives no pages back to the OS (and so takes none
// again): empty pages are kept and dirty ones released only in batches.
func TestCyclicDoesNotThrash(t *testing.T) {
	a := newAlloc(t, nil)
	c := a.NewCache()
	defer c.Close()
	live := make([][]byte, 300)
	for round := range 300 {
		for i := range live {
			var err error
			if round%2 == 0 {
				live[i], err = a.Alloc(16 + i%256)
			} else {
				live[i], err = c.Alloc(16 + i%256)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		for i, b := range live {
			free := a.Free
			if i%3 == 0 {
				free = c.Free
			}
			if err := free(b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if s := a.Stats(); s.Releases > 2 {
		t.Fatalf("cyclic alloc/free released pages %d times: %v", s.Releases, s)
	}
}

// TestSweepWhileBusy purges and closes while goroutines allocate and free
// through the per-P caches: the sweep must wait for calls in flight, take
// no block a goroutine holds, and lose none (Close then finds nothing live).
func TestSweepWhileBusy(t *testing.T) {
	a, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg, ready sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			var held [8][]byte
			var once sync.Once
			defer once.Do(ready.Done) // on an early return
			for i := 0; ; i++ {
				if i == len(held) {
					once.Do(ready.Done) // holds blocks from now on
				}
				select {
				case <-stop:
					for _, b := range held {
						if b != nil {
							if err := a.Free(b); err != nil {
								errs <- err
							}
						}
					}
					return
				default:
				}
				k := i % len(held)
				if b := held[k]; b != nil {
					if b[0] != byte(g) || b[len(b)-1] != byte(i) {
						errs <- fmt.Errorf("goroutine %d: block changed under it", g)
						return
					}
					if err := a.Free(b); err != nil {
						errs <- err
						return
					}
				}
				b, err := a.Alloc(16 + i%200)
				if err != nil {
					errs <- err
					return
				}
				b[0], b[len(b)-1] = byte(g), byte(i+len(held))
				held[k] = b
			}
		}()
	}
	ready.Wait()
	for range 2000 {
		a.Purge()
		if err := a.Close(); !errors.Is(err, ErrLeaked) {
			t.Errorf("Close while blocks are held: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("Close after every block was freed: %v", err)
	}
}

// TestMoreProcsAfterNew raises GOMAXPROCS after New: the new Ps get their
// caches on first use, and Close still finds every block they hold.
func TestMoreProcsAfterNew(t *testing.T) {
	if !perP {
		t.Skip("no per-P caches in this build")
	}
	a := newAlloc(t, nil)
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(before + 2))
	for round := 0; a.pcs[before].Load() == nil && a.pcs[before+1].Load() == nil; round++ {
		if round == 100 {
			t.Fatal("no goroutine ran on the new Ps")
		}
		churn(t, a, 8, 2000, func(g, i int) int { return 16 + (g*31+i)%300 })
	}
	if s := a.Stats(); s.InUseBlocks != 0 || s.Shared == 0 {
		t.Fatalf("after the goroutines: %v", s)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}
