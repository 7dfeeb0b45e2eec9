// Package churn is the workload of allocating and freeing small blocks: the
// pair and ring cases (ns per operation for mixed sizes of 16-256 bytes) and
// the burst cases (RSS while a burst of 64-byte blocks is allocated and
// freed), offheap's arena against the Go heap and an idealised floor. The
// arena package's Go benchmarks and the arena suite of `offheap bench` run
// the same workloads.
package churn

import (
	"math/rand/v2"
	"testing"

	"github.com/offheap/offheap/arena"
)

// Impls are the implementations of the pair and ring cases, offheap's first.
// The floors are not allocators: they run the same loop over an idealised
// allocator (floor.go), zeroing as arena does or not, as malloc does.
var Impls = []string{"offheap", "offheap-cache", "goheap", "floor", "floor-nozero"}

// RingLive is how many blocks the ring case keeps live.
const RingLive = 100_000

// sizes is a fixed random sequence of request sizes from 16 to 256 bytes.
var sizes = func() [1024]int {
	var s [1024]int
	r := rand.New(rand.NewPCG(1, 2))
	for i := range s {
		s[i] = 16 + r.IntN(241)
	}
	return s
}()

// sink keeps the Go heap's blocks from being optimised away.
var sink []byte

// Pair returns the pair workload for impl: allocate a block of a mixed size
// (16-256 bytes), write it, free it.
func Pair(impl string) func(b *testing.B) {
	switch impl {
	case "offheap":
		return withAllocator(pairShared)
	case "offheap-cache":
		return withAllocator(pairCache)
	case "floor", "floor-nozero":
		return withFloor(impl == "floor", pairFloor)
	}
	return pairGo
}

// Ring returns the ring workload for impl: RingLive blocks of mixed sizes
// live; each operation frees a random one and allocates its replacement.
func Ring(impl string) func(b *testing.B) {
	switch impl {
	case "offheap":
		return withAllocator(ringShared)
	case "offheap-cache":
		return withAllocator(ringCache)
	case "floor", "floor-nozero":
		return withFloor(impl == "floor", ringFloor)
	}
	return ringGo
}

// withAllocator runs f on a fresh allocator and checks it ends with nothing live.
func withAllocator(f func(b *testing.B, a *arena.Allocator)) func(b *testing.B) {
	return func(b *testing.B) {
		a, err := arena.New(nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		f(b, a)
		b.StopTimer()
		if err := a.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

func pairShared(b *testing.B, a *arena.Allocator) {
	b.ResetTimer()
	for i := range b.N {
		p, err := a.Alloc(sizes[i&1023])
		if err != nil {
			b.Fatal(err)
		}
		p[0] = 1
		if err := a.Free(p); err != nil {
			b.Fatal(err)
		}
	}
}

func pairCache(b *testing.B, a *arena.Allocator) {
	c := a.NewCache()
	b.ResetTimer()
	for i := range b.N {
		p, err := c.Alloc(sizes[i&1023])
		if err != nil {
			b.Fatal(err)
		}
		p[0] = 1
		if err := c.Free(p); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = c.Close()
}

func pairGo(b *testing.B) {
	b.ReportAllocs()
	for i := range b.N {
		p := make([]byte, sizes[i&1023])
		p[0] = 1
		sink = p
	}
	if len(sink) > 256 {
		b.Fatal("churn: pair allocated more than asked")
	}
	sink = nil
}

// xorshift is a cheap random index generator that allocates nothing.
type xorshift uint64

func (x *xorshift) next(n int) int {
	*x ^= *x << 13
	*x ^= *x >> 7
	*x ^= *x << 17
	// Lemire's multiply-shift maps the high 32 bits onto [0, n) without the
	// cost of a 64-bit division, which would dominate the ring case.
	return int(uint64(*x) >> 32 * uint64(n) >> 32)
}

func ringShared(b *testing.B, a *arena.Allocator) {
	live := make([][]byte, RingLive)
	for i := range live {
		live[i], _ = a.Alloc(sizes[i&1023])
	}
	rng := xorshift(88172645463325252)
	b.ResetTimer()
	for i := range b.N {
		j := rng.next(RingLive)
		if err := a.Free(live[j]); err != nil {
			b.Fatal(err)
		}
		p, err := a.Alloc(sizes[i&1023])
		if err != nil {
			b.Fatal(err)
		}
		p[0] = 1
		live[j] = p
	}
	b.StopTimer()
	for _, p := range live {
		_ = a.Free(p)
	}
}

func ringCache(b *testing.B, a *arena.Allocator) {
	c := a.NewCache()
	live := make([][]byte, RingLive)
	for i := range live {
		live[i], _ = c.Alloc(sizes[i&1023])
	}
	rng := xorshift(88172645463325252)
	b.ResetTimer()
	for i := range b.N {
		j := rng.next(RingLive)
		if err := c.Free(live[j]); err != nil {
			b.Fatal(err)
		}
		p, err := c.Alloc(sizes[i&1023])
		if err != nil {
			b.Fatal(err)
		}
		p[0] = 1
		live[j] = p
	}
	b.StopTimer()
	for _, p := range live {
		_ = c.Free(p)
	}
	_ = c.Close()
}

func ringGo(b *testing.B) {
	b.ReportAllocs()
	live := make([][]byte, RingLive)
	for i := range live {
		live[i] = make([]byte, sizes[i&1023])
	}
	rng := xorshift(88172645463325252)
	b.ResetTimer()
	for i := range b.N {
		j := rng.next(RingLive)
		p := make([]byte, sizes[i&1023])
		p[0] = 1
		live[j] = p
	}
}
