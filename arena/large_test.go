package arena

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

// TestMillionLargeBlocks holds a million large blocks live at once, of
// 4 KiB to 1 MiB (log-uniform: 180 GiB of address space, of which it
// touches a page in a thousand), and frees them in random order. Blocks
// above MaxSmall were once a mapping each, so past vm.max_map_count
// (65,530) an out-of-order Free failed in munmap, lost the block from the
// books and then called a retry a double free. Every Free must succeed, a
// second Free of each must be ErrDoubleFree, and Stats must count exactly.
func TestMillionLargeBlocks(t *testing.T) {
	n := 1_000_000
	if check.On || proc.Race || testing.Short() {
		// The checked build protects every free span (a mapping each), so it
		// is bounded by vm.max_map_count by design; -race is slow.
		n = 20_000
	}
	a := newAlloc(t, nil)
	rng := rand.New(rand.NewPCG(12, 34))
	blocks := make([][]byte, n)
	wantBytes := 0
	for i := range blocks {
		size := int(math.Exp(math.Log(4096) + rng.Float64()*math.Log(256)))
		b, err := a.Alloc(size)
		if err != nil {
			t.Fatalf("block %d of %d bytes: %v", i, size, err)
		}
		if i%1000 == 0 {
			b[0], b[size-1] = byte(i), byte(i>>8)
		}
		blocks[i] = b
		wantBytes += (size + osPage - 1) &^ (osPage - 1)
	}
	if s := a.Stats(); s.LargeBlocks != n || s.InUse != wantBytes || s.InUseBlocks != n {
		t.Fatalf("%d blocks of %d bytes live: %v", n, wantBytes, s)
	}
	order := rng.Perm(n)
	for k, i := range order {
		b := blocks[i]
		if i%1000 == 0 && (b[0] != byte(i) || b[len(b)-1] != byte(i>>8)) {
			t.Fatalf("block %d lost its data", i)
		}
		if err := a.Free(b); err != nil {
			t.Fatalf("free %d of %d (block %d, %d bytes): %v", k, n, i, len(b), err)
		}
		wantBytes -= (len(b) + osPage - 1) &^ (osPage - 1)
		if k%10 == 0 {
			if err := a.Free(b); !errors.Is(err, ErrDoubleFree) {
				t.Fatalf("second free of block %d: %v", i, err)
			}
		}
		if k == n/2 {
			if s := a.Stats(); s.LargeBlocks != n-k-1 || s.InUse != wantBytes {
				t.Fatalf("after %d frees: %v, want %d blocks of %d bytes", k+1, s, n-k-1, wantBytes)
			}
		}
	}
	if s := a.Stats(); s.LargeBlocks != 0 || s.InUse != 0 {
		t.Fatalf("after freeing all: %v", s)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLargeResident: Stats.Resident counts the pages of large blocks that
// are resident, not their whole size.
func TestLargeResident(t *testing.T) {
	if check.On {
		t.Skip("the checked build's figures differ: it protects and poisons")
	}
	a := newAlloc(t, nil)
	before := a.Stats().Resident
	const size, touched = 64 << 20, 16 << 20
	b, err := a.Alloc(size)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.Stats().Resident; r-before > 1<<20 {
		t.Fatalf("resident rose by %d KiB for a block not yet touched", (r-before)>>10)
	}
	for i := 0; i < touched; i += osPage {
		b[i] = 1
	}
	if r := a.Stats().Resident; r-before < touched || r-before > touched+1<<20 {
		t.Fatalf("resident rose by %d KiB for %d KiB touched", (r-before)>>10, touched>>10)
	}
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	if r := a.Stats().Resident; r-before > 1<<20 {
		t.Fatalf("resident %d KiB above where it started after the block was freed", (r-before)>>10)
	}
}

// TestLargeDoubleFree: a second Free of any freed large block is
// ErrDoubleFree (not only of the last 1024 freed), and a stale Free of an
// address that now lies inside another block fails and leaves that block
// alone.
func TestLargeDoubleFree(t *testing.T) {
	a := newAlloc(t, nil)
	const n = 3000
	var blocks [][]byte
	for range n {
		b, err := a.Alloc(8 << 10)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, b)
	}
	for _, b := range blocks {
		if err := a.Free(b); err != nil {
			t.Fatal(err)
		}
	}
	for i, b := range blocks {
		before := snapshot(a)
		if err := a.Free(b); !errors.Is(err, ErrDoubleFree) {
			t.Fatalf("second free of large block %d of %d: %v", i, n, err)
		}
		if after := snapshot(a); after != before {
			t.Fatalf("double free changed state:\n%s\n%s", before, after)
		}
	}
	// Three pages live: 0 and 2 keep 1 from merging with anything else.
	var three [3][]byte
	for i := range three {
		three[i], _ = a.Alloc(osPage)
	}
	_ = a.Free(three[0])
	_ = a.Free(three[1])
	big, err := a.Alloc(2 * osPage) // over both freed pages, if it reuses them
	if err != nil {
		t.Fatal(err)
	}
	fill(big, 9)
	before := snapshot(a)
	if err := a.Free(three[1]); err == nil {
		t.Fatal("stale free of an address inside a live block succeeded")
	}
	if after := snapshot(a); after != before || !holds(big, 9) {
		t.Fatalf("stale free changed state or the live block:\n%s\n%s", before, after)
	}
	_ = a.Free(big)
	_ = a.Free(three[2])
}

// TestLargeFreeOSError: when the OS refuses to take a freed block's pages
// back, Free returns the OS's error (not ErrDoubleFree), the block stays
// allocated and counted, and a later Free of it succeeds.
func TestLargeFreeOSError(t *testing.T) {
	a := newAlloc(t, nil)
	b, err := a.Alloc(100 << 10)
	if err != nil {
		t.Fatal(err)
	}
	fill(b, 3)
	ls := a.large
	release := ls.release
	ls.release = func(off, n int) error { return fmt.Errorf("madvise: %w", syscall.ENOMEM) }
	before := snapshot(a)
	err = a.Free(b)
	if !errors.Is(err, syscall.ENOMEM) || errors.Is(err, ErrDoubleFree) || errors.Is(err, ErrForeign) {
		t.Fatalf("free with the OS refusing: %v", err)
	}
	s := a.Stats()
	s.Resident, s.ReleaseErrors, s.Releases = 0, 0, 0
	if after := fmt.Sprintf("%+v", s); after != before {
		t.Fatalf("failed free changed the books:\n%s\n%s", before, after)
	}
	if s := a.Stats(); s.ReleaseErrors != 1 {
		t.Fatalf("failed release not counted: %v", s)
	}
	ls.release = release
	if err := a.Free(b); err != nil {
		t.Fatalf("free after the OS recovered: %v", err)
	}
	if err := a.Free(b); !errors.Is(err, ErrDoubleFree) {
		t.Fatalf("double free: %v", err)
	}
	if err := ls.spans.verify(); err != nil {
		t.Fatal(err)
	}
}

// TestLargeExhausted: the large reservation bounds the bytes of large
// blocks live at once. A request above it is ErrTooLarge, one that does not
// fit beside the live blocks is ErrExhausted, and neither changes anything.
func TestLargeExhausted(t *testing.T) {
	a := newAlloc(t, &Options{LargeReserve: 16 << 20})
	if _, err := a.Alloc(17 << 20); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Alloc above the large reservation: %v", err)
	}
	b, err := a.Alloc(10 << 20)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(a)
	if _, err := a.Alloc(10 << 20); !errors.Is(err, ErrExhausted) {
		t.Fatalf("Alloc past the large reservation: %v", err)
	}
	if after := snapshot(a); after != before {
		t.Fatalf("failed Alloc changed state:\n%s\n%s", before, after)
	}
	if err := a.Free(b); err != nil {
		t.Fatal(err)
	}
	if b, err = a.Alloc(16 << 20); err != nil {
		t.Fatalf("Alloc of the whole large reservation once it is free: %v", err)
	}
	_ = a.Free(b)
}
