// The ring's floor: the ring workload over an idealised allocator that does
// only what any allocator must (pop a block of the right class, zero it; push
// it back on free) with no checks, locks or metadata, so the figures of the
// real allocators can be read against what this harness and machine allow.

package churn

import (
	"testing"

	"github.com/offheap/offheap/vmem"
)

// floorAlloc is the idealised allocator: per 16-byte class, a stack of block
// offsets in one mapping, carved up front.
type floorAlloc struct {
	mem    []byte
	stacks [17][]int32
	zero   bool
}

func newFloorAlloc(b *testing.B, zero bool) (*floorAlloc, func()) {
	const perClass = 12_000 // 192k blocks for 100k live: room in every class
	r, err := vmem.Reserve(64<<20, nil)
	if err == nil {
		err = r.Grow(64 << 20)
	}
	if err != nil {
		b.Fatal(err)
	}
	f := &floorAlloc{mem: r.Bytes(), zero: zero}
	off := int32(0)
	for k := 1; k <= 16; k++ {
		for range perClass {
			f.stacks[k] = append(f.stacks[k], off)
			off += int32(k * 16)
		}
	}
	return f, func() { _ = r.Close() }
}

func (f *floorAlloc) alloc(n int) []byte {
	k := (n + 15) >> 4
	s := f.stacks[k]
	off := int(s[len(s)-1])
	f.stacks[k] = s[:len(s)-1]
	p := f.mem[off : off+n : off+n]
	if f.zero {
		clear(p)
	}
	return p
}

func (f *floorAlloc) free(p []byte) {
	k := (cap(p) + 15) >> 4
	f.stacks[k] = append(f.stacks[k], int32(offsetIn(f.mem, p)))
}

// withFloor runs f on a fresh idealised allocator.
func withFloor(zero bool, f func(b *testing.B, fa *floorAlloc)) func(b *testing.B) {
	return func(b *testing.B) {
		fa, done := newFloorAlloc(b, zero)
		defer done()
		b.ReportAllocs()
		f(b, fa)
	}
}

func pairFloor(b *testing.B, f *floorAlloc) {
	b.ResetTimer()
	for i := range b.N {
		p := f.alloc(sizes[i&1023])
		p[0] = 1
		f.free(p)
	}
}

func ringFloor(b *testing.B, f *floorAlloc) {
	live := make([][]byte, RingLive)
	for i := range live {
		live[i] = f.alloc(sizes[i&1023])
	}
	rng := xorshift(88172645463325252)
	b.ResetTimer()
	for i := range b.N {
		j := rng.next(RingLive)
		f.free(live[j])
		p := f.alloc(sizes[i&1023])
		p[0] = 1
		live[j] = p
	}
}
