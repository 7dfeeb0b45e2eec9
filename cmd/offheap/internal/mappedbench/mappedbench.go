// Package mappedbench is the mapped suite of `offheap bench`: QuestDB's six
// memory microbenchmarks run by contiguous memory, the legacy paged design
// and a plain Go slice (internal/workload/access), and the append throughput
// of column files against buffered writes (internal/workload/ingest). The
// mapped and column packages' Go benchmarks run the same workloads.
package mappedbench

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/internal/workload/access"
	"github.com/offheap/offheap/internal/workload/ingest"
)

// columns are the suite's flags for the column cases.
type columns struct {
	rows int64
	dir  string
}

// Suite returns the mapped suite.
func Suite() bench.Suite {
	c := &columns{}
	return bench.Suite{
		Name: "mapped",
		Doc: "QuestDB's memory microbenchmarks, ns/op: IntRead/LongRead sum 10,000 int32/int64 values read by offset " +
			"(4i/8i), IntWrite/LongWrite write them, StrRead reads 100 short strings by offset (kept in a second " +
			"memory) and sums their lengths, StrWrite appends one string. contiguous: mapped.Memory, one region " +
			"that grows in place; paged: fixed 1 MiB pages and a cached hot page (the design QuestDB " +
			"replaced); slice: a plain []byte with encoding/binary, the limit. Column cases: append throughput " +
			"(rows/s, MB/s) of column files, fixed int64 and variable 16-byte strings, unsynced and synced " +
			"every 64 Ki rows, against buffered os.File writes (bufio, fsync where synced).",
		Claim: &bench.Claim{
			Seed: "QuestDB",
			Published: "contiguous memory faster than the legacy paged design, legacy/contiguous ns/op: " +
				"IntRead 1.54x, IntWrite 1.08x, LongRead 1.23x, LongWrite 1.58x, StrRead 1.75x, StrWrite 1.81x",
			Answer: answer,
		},
		Flags: func(fs *flag.FlagSet) {
			fs.Int64Var(&c.rows, "mapped-rows", 4<<20, "mapped suite: rows appended per column case (--quick: 1/8)")
			fs.StringVar(&c.dir, "mapped-dir", "", "mapped suite: directory for column files (default: the system temp dir)")
		},
		Tasks: c.tasks,
	}
}

func (c *columns) tasks(cfg bench.Config) ([]bench.Task, error) {
	var ts []bench.Task
	for _, cs := range access.Cases {
		for _, impl := range access.Impls {
			f, err := access.Func(cs, impl)
			if err != nil {
				return nil, err
			}
			ts = append(ts, bench.Task{Case: cs, Impl: impl, N: caseN(cs), Run: func() (bench.Sample, error) {
				return bench.GoBench(cfg.BenchTime, f), nil
			}})
		}
	}
	col, err := c.columnTasks(cfg)
	return append(ts, col...), err
}

// answer gives paged/contiguous ns/op for each QuestDB case measured.
func answer(o bench.Outcome) string {
	var parts []string
	for _, cs := range access.Cases {
		c, ok1 := o.Value(cs, "contiguous", caseN(cs), "ns/op")
		p, ok2 := o.Value(cs, "paged", caseN(cs), "ns/op")
		if ok1 && ok2 && c > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2fx", cs, p/c))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "paged/contiguous ns/op: " + strings.Join(parts, ", ")
}

func caseN(c string) int64 {
	switch c {
	case "StrRead":
		return access.Strings
	case "StrWrite":
		return 1
	}
	return access.Values
}

// columnTasks are the suite's append throughput measurements.
func (c *columns) columnTasks(cfg bench.Config) ([]bench.Task, error) {
	rows := int(c.rows)
	if cfg.Quick {
		rows /= 8
	}
	if rows <= 0 {
		return nil, fmt.Errorf("%d rows per column case: not positive (--mapped-rows)", rows)
	}
	var ts []bench.Task
	for _, cs := range ingest.Cases {
		for _, impl := range ingest.Impls {
			t := bench.Task{Case: cs, Impl: impl, N: int64(rows)}
			if need := int64(rows) * int64(ingest.RowBytes(cs)); cfg.MaxBytes > 0 && need > cfg.MaxBytes {
				t.Skip = fmt.Sprintf("needs %d MiB, more than the %d MiB allowed (--max-mem)", need>>20, cfg.MaxBytes>>20)
			} else {
				t.Run = func() (bench.Sample, error) { return c.appendOnce(cs, impl, rows) }
			}
			ts = append(ts, t)
		}
	}
	return ts, nil
}

// appendOnce times one ingest.AppendRows in a fresh directory.
func (c *columns) appendOnce(cs, impl string, rows int) (bench.Sample, error) {
	dir, err := os.MkdirTemp(c.dir, "mappedbench")
	if err != nil {
		return bench.Sample{}, err
	}
	defer os.RemoveAll(dir)
	var t0 time.Time
	var d time.Duration
	if err := ingest.AppendRows(cs, impl, dir, rows, func() { t0 = time.Now() }, func() { d = time.Since(t0) }); err != nil {
		return bench.Sample{}, err
	}
	s := d.Seconds()
	return bench.Sample{Figures: []bench.Figure{
		{Metric: "rows/s", Value: float64(rows) / s},
		{Metric: "MB/s", Value: float64(rows) * float64(ingest.RowBytes(cs)) / 1e6 / s},
	}}, nil
}
