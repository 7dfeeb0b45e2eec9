package vmem_test

import (
	"fmt"
	"testing"

	"github.com/offheap/offheap/internal/workload/growth"
	"github.com/offheap/offheap/vmem"
)

// BenchmarkGrow times growing N touched bytes to 2N: in place, by mremap and by copy.
func BenchmarkGrow(b *testing.B) {
	for _, n := range []int{16 << 20, 256 << 20} {
		for _, impl := range growth.Impls {
			b.Run(fmt.Sprintf("%s/N=%dMiB", impl, n>>20), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					g, err := growth.NewGrower(impl, n)
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if err := g.Grow(); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					_ = g.Close()
					b.StartTimer()
				}
			})
		}
	}
}

// BenchmarkReleaseReuse times handing 1 MiB of touched pages back and making them ready again.
func BenchmarkReleaseReuse(b *testing.B) {
	r, err := vmem.Reserve(1<<20, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	_ = r.Grow(1 << 20)
	b.ReportAllocs()
	b.SetBytes(1 << 20)
	for b.Loop() {
		buf := r.Bytes()
		for i := 0; i < len(buf); i += vmem.PageSize() {
			buf[i] = 1
		}
		if err := r.Release(0, r.Len()); err != nil {
			b.Fatal(err)
		}
		if err := r.Reuse(0, r.Len()); err != nil {
			b.Fatal(err)
		}
	}
}
