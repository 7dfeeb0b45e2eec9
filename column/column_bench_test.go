package column_test

import (
	"testing"

	"github.com/offheap/offheap/internal/workload/ingest"
)

// BenchmarkAppend measures append throughput of fixed (int64) and variable
// (16-byte string) column files, unsynced and synced every 64 Ki rows,
// against buffered writes of the same bytes to plain files; the same
// workloads as the column cases of the mapped suite of `offheap bench`.
func BenchmarkAppend(b *testing.B) {
	for _, c := range ingest.Cases {
		for _, impl := range ingest.Impls {
			b.Run(c+"/"+impl, ingest.Bench(c, impl))
		}
	}
}
