package arrowalloc

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// workloadSchema has a column of most kinds of Arrow type.
var workloadSchema = arrow.NewSchema([]arrow.Field{
	{Name: "i", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	{Name: "f", Type: arrow.PrimitiveTypes.Float64},
	{Name: "s", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ls", Type: arrow.BinaryTypes.LargeString},
	{Name: "b", Type: arrow.FixedWidthTypes.Boolean},
	{Name: "l", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32)},
	{Name: "st", Type: arrow.StructOf(
		arrow.Field{Name: "a", Type: arrow.PrimitiveTypes.Int32},
		arrow.Field{Name: "b", Type: arrow.BinaryTypes.String})},
	{Name: "d", Type: &arrow.DictionaryType{IndexType: arrow.PrimitiveTypes.Int16, ValueType: arrow.BinaryTypes.String}},
	{Name: "ts", Type: arrow.FixedWidthTypes.Timestamp_us},
	{Name: "fsb", Type: &arrow.FixedSizeBinaryType{ByteWidth: 3}},
}, nil)

// workloadJSON returns n rows for workloadSchema.
func workloadJSON(n, seed int) string {
	var b strings.Builder
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		k := i*7 + seed
		iv := fmt.Sprint(k)
		if k%5 == 0 {
			iv = "null"
		}
		fmt.Fprintf(&b, `{"i":%s,"f":%d.5,"s":"str-%d","ls":"%s","b":%v,"l":[%d,%d],"st":{"a":%d,"b":"x%d"},"d":"cat%d","ts":%d,"fsb":"YWJj"}`,
			iv, k, k, strings.Repeat("z", k%13), k%2 == 0, k, k+1, k, k%3, k%4, 1700000000000000+k)
	}
	b.WriteString("]")
	return b.String()
}

// workload does what an Arrow program does with its buffers and returns
// what it computed, as text: builds record batches from JSON, slices and
// concatenates them, writes and reads them back through IPC (stream and
// file), filters, takes, casts and adds with compute, and prints the
// results. Every buffer is released by the end.
func workload(t *testing.T, mem memory.Allocator) string {
	var out strings.Builder
	ctx := compute.WithAllocator(context.Background(), mem)
	check := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	var recs []arrow.RecordBatch
	for seed := range 4 {
		rec, _, err := array.RecordFromJSON(mem, workloadSchema, strings.NewReader(workloadJSON(200+seed*50, seed)))
		check(err)
		recs = append(recs, rec)
	}
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()

	// Slices and concatenation.
	sl := recs[1].NewSlice(10, 60)
	defer sl.Release()
	cat, err := array.Concatenate([]arrow.Array{recs[0].Column(2), sl.Column(2), recs[2].Column(2)}, mem)
	check(err)
	defer cat.Release()
	fmt.Fprintln(&out, cat.Len(), cat.(*array.String).Value(cat.Len()-1))

	// IPC stream round trip.
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(workloadSchema), ipc.WithAllocator(mem))
	for _, r := range append(recs, sl) {
		check(w.Write(r))
	}
	check(w.Close())
	r, err := ipc.NewReader(&buf, ipc.WithAllocator(mem))
	check(err)
	i := 0
	for r.Next() {
		want := append(recs, sl)[i]
		if !array.RecordEqual(r.RecordBatch(), want) {
			t.Errorf("IPC stream batch %d differs", i)
		}
		i++
	}
	check(r.Err())
	r.Release()

	// IPC file round trip (one dictionary per field: batches of recs[0]).
	head := recs[0].NewSlice(5, 100)
	defer head.Release()
	fileRecs := []arrow.RecordBatch{recs[0], head}
	var file bytes.Buffer
	fw, err := ipc.NewFileWriter(&file, ipc.WithSchema(workloadSchema), ipc.WithAllocator(mem))
	check(err)
	for _, r := range fileRecs {
		check(fw.Write(r))
	}
	check(fw.Close())
	fr, err := ipc.NewFileReader(bytes.NewReader(file.Bytes()), ipc.WithAllocator(mem))
	check(err)
	for i := range fr.NumRecords() {
		rec, err := fr.RecordBatch(i)
		check(err)
		if !array.RecordEqual(rec, fileRecs[i]) {
			t.Errorf("IPC file batch %d differs", i)
		}
	}
	check(fr.Close())

	// Compute: filter, take, sort, cast, add.
	mb := array.NewBooleanBuilder(mem)
	for i := range recs[3].NumRows() {
		mb.Append(i%3 != 0)
	}
	mask := mb.NewBooleanArray()
	mb.Release()
	defer mask.Release()
	filtered, err := compute.FilterRecordBatch(ctx, recs[3], mask, compute.DefaultFilterOptions())
	check(err)
	defer filtered.Release()
	// (sort_indices and numeric-to-string casts leak in arrow-go v18.8.0, on
	// Go's allocator too, so this takes in reverse order and casts to float.)
	ib := array.NewInt64Builder(mem)
	for i := filtered.NumRows() - 1; i >= 0; i-- {
		ib.Append(i)
	}
	idx := ib.NewInt64Array()
	ib.Release()
	defer idx.Release()
	taken, err := compute.TakeArray(ctx, filtered.Column(2), idx)
	check(err)
	defer taken.Release()
	cast, err := compute.CastArray(ctx, filtered.Column(0), compute.SafeCastOptions(arrow.PrimitiveTypes.Float64))
	check(err)
	defer cast.Release()
	ints := compute.NewDatum(filtered.Column(0))
	defer ints.Release()
	sum, err := compute.CallFunction(ctx, "add", nil, ints, ints)
	check(err)
	defer sum.Release()
	sumArr := sum.(*compute.ArrayDatum).MakeArray()
	defer sumArr.Release()
	fmt.Fprintln(&out, filtered.NumRows(), taken, cast, sumArr)

	// A table over the batches, read back in chunks, and JSON of a batch.
	tbl := array.NewTableFromRecords(workloadSchema, recs)
	defer tbl.Release()
	tr := array.NewTableReader(tbl, 97)
	for tr.Next() {
		fmt.Fprint(&out, tr.RecordBatch().NumRows(), " ")
	}
	tr.Release()
	check(array.RecordToJSON(sl, &out))
	return out.String()
}

// TestWorkloadNoFalsePositives runs the workload under a Checked allocator
// and Arrow's Go allocator: the checked run must report nothing (no fault,
// no bad free, no leak) and compute the same results.
func TestWorkloadNoFalsePositives(t *testing.T) {
	goMem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	want := workload(t, goMem)
	goMem.AssertSize(t, 0)

	c := newChecked(t, nil)
	var got string
	if err := c.Run(func() { got = workload(t, c) }); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("the checked run computed\n%s\nArrow's allocator\n%s", got, want)
	}
	c.AssertSize(t, 0)
	closeChecked(t, c)
}
