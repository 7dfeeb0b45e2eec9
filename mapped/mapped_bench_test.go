package mapped_test

import (
	"testing"

	"github.com/offheap/offheap/internal/workload/access"
)

// BenchmarkQuestDB runs QuestDB's six memory microbenchmarks (cases) for
// contiguous memory, paged memory and a plain slice (impls); the same
// workloads as the mapped suite of `offheap bench`.
func BenchmarkQuestDB(b *testing.B) {
	for _, c := range access.Cases {
		for _, impl := range access.Impls {
			f, err := access.Func(c, impl)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(c+"/"+impl, f)
		}
	}
}

// BenchmarkSliceNoBoundsChecks is the slice impl of IntRead and LongRead
// with every bounds check removed by a compiler hint: the absolute limit,
// for comparison with BenchmarkQuestDB's contiguous and slice impls.
func BenchmarkSliceNoBoundsChecks(b *testing.B) {
	for name, f := range access.NoBCE() {
		b.Run(name, f)
	}
}
