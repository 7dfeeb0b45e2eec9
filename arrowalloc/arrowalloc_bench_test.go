// Benchmarks of the allocators against Arrow's Go allocator, in the same run:
// a bare Allocate/Free cycle, a growing Reallocate, and an Int64 builder.
package arrowalloc

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// benchAllocators returns the allocators every benchmark compares: this
// package's over a fresh arena, Arrow's Go allocator as the baseline, and
// Checked (what checked mode costs).
func benchAllocators(b *testing.B) []struct {
	name string
	mem  memory.Allocator
} {
	a := newArena(b)
	b.Cleanup(func() { closeArena(b, a) })
	c := newChecked(b, nil)
	b.Cleanup(func() { closeChecked(b, c) })
	return []struct {
		name string
		mem  memory.Allocator
	}{
		{"arrowalloc", New(a)},
		{"go", memory.NewGoAllocator()},
		{"checked", c},
	}
}

func BenchmarkAllocateFree(b *testing.B) {
	for _, size := range []int{64, 4096, 65536} {
		for _, m := range benchAllocators(b) {
			b.Run(fmt.Sprintf("%s/%d", m.name, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(size))
				for b.Loop() {
					m.mem.Free(m.mem.Allocate(size))
				}
			})
		}
	}
}

func BenchmarkReallocate(b *testing.B) {
	for _, m := range benchAllocators(b) {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf := m.mem.Allocate(64)
				for size := 128; size <= 16384; size *= 2 {
					buf = m.mem.Reallocate(size, buf)
				}
				m.mem.Free(buf)
			}
		})
	}
}

func BenchmarkBuildInt64(b *testing.B) {
	for _, m := range benchAllocators(b) {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			bld := array.NewInt64Builder(m.mem)
			defer bld.Release()
			for b.Loop() {
				for i := range 10000 {
					bld.Append(int64(i))
				}
				bld.NewInt64Array().Release()
			}
		})
	}
}
