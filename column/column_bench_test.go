package column_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/column"
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

// BenchmarkOpenVar measures reopening a variable column of 1 Mi rows of
// 16-byte strings (in the page cache), which reads each row's offset and
// length once to check the files.
func BenchmarkOpenVar(b *testing.B) {
	path := filepath.Join(b.TempDir(), "v")
	c, err := column.OpenVar(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	for i := range 1 << 20 {
		_ = c.AppendStr(fmt.Sprintf("%016d", i))
	}
	if err := c.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		c, err := column.OpenVar(path, nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = c.Close()
	}
}
