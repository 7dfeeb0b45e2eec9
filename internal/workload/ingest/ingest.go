// Package ingest is the workload of appending rows to files: fixed and
// variable column files against buffered writes of the same bytes to plain
// files, unsynced and synced. The column package's Go benchmarks and the
// column cases of the mapped suite of `offheap bench` run the same appends.
package ingest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/column"
)

// Cases are the append cases: fixed int64 rows or variable 16-byte
// string rows, unsynced or synced every SyncEvery rows and at the end.
var Cases = []string{"FixedAppend", "FixedAppendSynced", "VarAppend", "VarAppendSynced"}

// Impls: column files, and the baseline of writing the same bytes to
// plain files through a 64 KiB bufio.Writer (fsync where synced).
var Impls = []string{"column", "bufio"}

// SyncEvery is how many rows the synced cases append between syncs.
const SyncEvery = 64 << 10

// varValue is the 16-byte string every variable row holds.
const varValue = "0123456789abcdef"

// RowBytes is what one row of case c writes to the files: 8 bytes for a
// fixed row; a 4-byte length, 16 bytes and an 8-byte index entry for a
// variable one.
func RowBytes(c string) int {
	if isVar(c) {
		return 4 + len(varValue) + 8
	}
	return 8
}

func isVar(c string) bool    { return c == "VarAppend" || c == "VarAppendSynced" }
func isSynced(c string) bool { return c == "FixedAppendSynced" || c == "VarAppendSynced" }
func fixedValue(i int) int64 { return int64(uint64(i) * 0x9e3779b97f4a7c15) }

// AppendRows appends rows rows of case c with impl to new files in dir,
// calling start before the appends and stop after them (and after the last
// sync, in the synced cases); opening and closing are outside.
func AppendRows(c, impl, dir string, rows int, start, stop func()) error {
	switch impl {
	case "column":
		if isVar(c) {
			return appendVarColumn(isSynced(c), dir, rows, start, stop)
		}
		return appendFixedColumn(isSynced(c), dir, rows, start, stop)
	case "bufio":
		return appendBufio(c, dir, rows, start, stop)
	}
	return fmt.Errorf("ingest: unknown impl %q", impl)
}

// syncCloser is what the append drivers need of a column file besides its
// typed append: both column.Fixed and column.Var have it.
type syncCloser interface {
	Sync() error
	Close() error
}

// syncEvery syncs col after every SyncEvery-th row i when synced.
func syncEvery(col syncCloser, synced bool, i int) error {
	if synced && (i+1)%SyncEvery == 0 {
		return col.Sync()
	}
	return nil
}

// finish makes the last rows durable when synced, stops the clock and closes col.
func finish(col syncCloser, synced bool, stop func()) error {
	if synced {
		if err := col.Sync(); err != nil {
			return err
		}
	}
	stop()
	return col.Close()
}

func appendFixedColumn(synced bool, dir string, rows int, start, stop func()) error {
	col, err := column.OpenFixed[int64](filepath.Join(dir, "fixed"), nil)
	if err != nil {
		return err
	}
	defer col.Close()
	start()
	for i := range rows {
		if err := col.Append(fixedValue(i)); err != nil {
			return err
		}
		if err := syncEvery(col, synced, i); err != nil {
			return err
		}
	}
	return finish(col, synced, stop)
}

func appendVarColumn(synced bool, dir string, rows int, start, stop func()) error {
	col, err := column.OpenVar(filepath.Join(dir, "var"), nil)
	if err != nil {
		return err
	}
	defer col.Close()
	start()
	for i := range rows {
		if err := col.AppendStr(varValue); err != nil {
			return err
		}
		if err := syncEvery(col, synced, i); err != nil {
			return err
		}
	}
	return finish(col, synced, stop)
}

// bufFile is a plain file written through a bufio.Writer.
type bufFile struct {
	f *os.File
	w *bufio.Writer
}

func createBuf(path string) (*bufFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &bufFile{f, bufio.NewWriterSize(f, 64<<10)}, nil
}

// flush writes out the buffer and, if synced, waits for the disk (fsync).
func (b *bufFile) flush(synced bool) error {
	if err := b.w.Flush(); err != nil {
		return err
	}
	if synced {
		return b.f.Sync()
	}
	return nil
}

// appendBufio writes the bytes the column impl would to plain files: the
// fixed values, or the length-prefixed values and an index of their offsets.
func appendBufio(c, dir string, rows int, start, stop func()) error {
	data, err := createBuf(filepath.Join(dir, "data"))
	if err != nil {
		return err
	}
	defer data.f.Close()
	index, err := createBuf(filepath.Join(dir, "index"))
	if err != nil {
		return err
	}
	defer index.f.Close()
	synced, variable := isSynced(c), isVar(c)
	var scratch [8]byte
	start()
	off := 0
	for i := range rows {
		if variable {
			binary.LittleEndian.PutUint64(scratch[:], uint64(off))
			_, _ = index.w.Write(scratch[:8])
			binary.LittleEndian.PutUint32(scratch[:], uint32(len(varValue)))
			_, _ = data.w.Write(scratch[:4])
			_, _ = data.w.WriteString(varValue)
			off += 4 + len(varValue)
		} else {
			binary.LittleEndian.PutUint64(scratch[:], uint64(fixedValue(i)))
			_, _ = data.w.Write(scratch[:8])
		}
		if synced && (i+1)%SyncEvery == 0 {
			if err := flushAll(synced, data, index); err != nil {
				return err
			}
		}
	}
	if err := flushAll(synced, data, index); err != nil {
		return err
	}
	stop()
	return nil
}

func flushAll(synced bool, files ...*bufFile) error {
	for _, f := range files {
		if err := f.flush(synced); err != nil {
			return err
		}
	}
	return nil
}

// Bench returns the Go benchmark of case c with impl: each op appends
// SyncEvery rows to new files, and it reports rows/s and MB/s.
func Bench(c, impl string) func(b *testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(SyncEvery * RowBytes(c)))
		start, stop := b.StartTimer, b.StopTimer
		for b.Loop() {
			stop()
			dir, err := os.MkdirTemp("", "ingest")
			if err != nil {
				b.Fatal(err)
			}
			if err := AppendRows(c, impl, dir, SyncEvery, start, stop); err != nil {
				b.Fatal(err)
			}
			_ = os.RemoveAll(dir)
			start()
		}
		b.ReportMetric(float64(SyncEvery)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	}
}
