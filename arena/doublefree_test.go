package arena

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offheap/offheap/internal/proc"
)

// frees returns the ways to free a block of a: through the Allocator, and
// through a Cache of its own.
func frees(a *Allocator) map[string]func([]byte) error {
	return map[string]func([]byte) error{"allocator": a.Free, "cache": a.NewCache().Free}
}

// TestDoubleFreeAfterWrite: a double free is ErrDoubleFree and changes
// nothing even when the block was written after its first free (a use
// after free), which once destroyed the in-block mark that found it, so the
// block was freed twice and later handed out to two owners.
func TestDoubleFreeAfterWrite(t *testing.T) {
	for how, free := range frees(newAlloc(t, nil)) {
		a := newAlloc(t, nil)
		free = frees(a)[how]
		keep, _ := a.Alloc(64) // keeps the page in use
		b, _ := a.Alloc(64)
		if err := free(b); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 0xA5 // the use after free
		}
		before := snapshot(a)
		if err := free(b); !errors.Is(err, ErrDoubleFree) {
			t.Fatalf("%s: double free of a block written after its first free: %v", how, err)
		}
		if after := snapshot(a); after != before {
			t.Fatalf("%s: double free changed state:\n%s\n%s", how, before, after)
		}
		distinct(t, a, 64, 2000)
		_ = a.Free(keep)
	}
}

// distinct allocates n blocks of size bytes and fails if any two share an
// address (a block handed out twice), then frees them.
func distinct(t *testing.T, a *Allocator, size, n int) {
	t.Helper()
	seen := map[uintptr]bool{}
	var blocks [][]byte
	for range n {
		b, err := a.Alloc(size)
		if err != nil {
			t.Fatal(err)
		}
		if seen[addrOf(b)] {
			t.Fatalf("block %#x of %d bytes handed out twice", addrOf(b), size)
		}
		seen[addrOf(b)] = true
		blocks = append(blocks, b)
	}
	for _, b := range blocks {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRacingDoubleFree has two goroutines free the same blocks at once, in
// the same order, over and over, through the Allocator or a Cache each,
// small blocks and large: of the two frees of each block exactly one must
// succeed and the other be ErrDoubleFree, and the allocator must stay whole
// (no block handed out twice, exact Stats, Close succeeds). Racing frees
// once both succeeded, and the block went to two owners.
func TestRacingDoubleFree(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two Ps to race")
	}
	rounds := 1000
	if proc.Race {
		rounds = 100
	}
	a := newAlloc(t, nil)
	keep, _ := a.Alloc(16)
	caches := [2]*Cache{a.NewCache(), a.NewCache()}
	sizes := []int{16, 48, 64, 100, 256, 2048, 5000}
	const batch = 256
	for r := range rounds {
		size := sizes[r%len(sizes)]
		var blocks [batch][]byte
		for i := range blocks {
			var err error
			if blocks[i], err = a.Alloc(size); err != nil {
				t.Fatal(err)
			}
		}
		// Goroutine 1 waits for 0 to be ready, starts both and waits a
		// little, by an amount that varies from round to round, so that
		// over the rounds the two meet on the same block at every offset.
		var ready, start atomic.Int32
		var errs [2][batch]error
		var wg sync.WaitGroup
		for g := range 2 {
			free := a.Free
			if (r>>g)&1 == 1 {
				free = caches[g].Free
			}
			wg.Go(func() {
				if g == 0 {
					ready.Store(1)
					for start.Load() == 0 {
					}
				} else {
					for ready.Load() == 0 {
					}
					start.Store(1)
					for i := 0; i < r%64; i++ {
						start.Load()
					}
				}
				for i, b := range blocks {
					errs[g][i] = free(b)
				}
			})
		}
		wg.Wait()
		for i := range blocks {
			e0, e1 := errs[0][i], errs[1][i]
			if (e0 == nil) == (e1 == nil) || !errors.Is(e0, ErrDoubleFree) && !errors.Is(e1, ErrDoubleFree) {
				t.Fatalf("round %d: two frees of one %d-byte block at once: %v, %v", r, size, e0, e1)
			}
		}
	}
	for _, c := range caches {
		c.Flush()
	}
	if s := a.Stats(); s.InUseBlocks != 1 || s.LargeBlocks != 0 {
		t.Fatalf("after the racing frees: %v", s)
	}
	for _, size := range sizes {
		distinct(t, a, size, 3000)
	}
	if err := a.Free(keep); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(fmt.Errorf("close after the racing frees: %w", err))
	}
}
