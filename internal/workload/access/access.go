// Package access is QuestDB's six memory microbenchmarks (int and long reads
// and writes by offset, string reads and appends) as Go benchmark functions,
// run by contiguous memory, the legacy paged design and a plain Go slice. The
// mapped package's Go benchmarks and the mapped suite of `offheap bench` run
// the same functions.
package access

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/offheap/offheap/internal/paged"
	"github.com/offheap/offheap/mapped"
)

// Cases are QuestDB's six microbenchmarks, in their order.
var Cases = []string{"IntRead", "IntWrite", "LongRead", "LongWrite", "StrRead", "StrWrite"}

// Impls are the implementations, offheap's first: contiguous mapped.Memory,
// paged.Memory with PagedPageSize pages, and a plain []byte (the limit).
var Impls = []string{"contiguous", "paged", "slice"}

// Sizes of the workloads, as QuestDB's benchmarks had them.
const (
	Values        = 10_000  // IntRead, IntWrite, LongRead, LongWrite: values per op
	Strings       = 100     // StrRead: strings per op
	PagedPageSize = 1 << 20 // the paged impl's page size
	strPool       = 4096    // StrWrite cycles through this many pre-made strings
	strResetEvery = 1 << 16 // StrWrite starts again at offset 0 this often, bounding memory
)

// Sink keeps results alive so the compiler cannot drop the work.
var Sink int64

// Func returns the Go benchmark function of case c run by impl.
func Func(c, impl string) (func(b *testing.B), error) {
	f, ok := funcs[c+"/"+impl]
	if !ok {
		return nil, fmt.Errorf("access: unknown case %q or impl %q", c, impl)
	}
	return f, nil
}

var funcs = map[string]func(b *testing.B){
	"IntRead/contiguous":   intReadContiguous,
	"IntRead/paged":        intReadPaged,
	"IntRead/slice":        intReadSlice,
	"IntWrite/contiguous":  intWriteContiguous,
	"IntWrite/paged":       intWritePaged,
	"IntWrite/slice":       intWriteSlice,
	"LongRead/contiguous":  longReadContiguous,
	"LongRead/paged":       longReadPaged,
	"LongRead/slice":       longReadSlice,
	"LongWrite/contiguous": longWriteContiguous,
	"LongWrite/paged":      longWritePaged,
	"LongWrite/slice":      longWriteSlice,
	"StrRead/contiguous":   strReadContiguous,
	"StrRead/paged":        strReadPaged,
	"StrRead/slice":        strReadSlice,
	"StrWrite/contiguous":  strWriteContiguous,
	"StrWrite/paged":       strWritePaged,
	"StrWrite/slice":       strWriteSlice,
}

// newContiguous returns anonymous contiguous memory holding n zero bytes.
func newContiguous(b *testing.B, n int) *mapped.Memory {
	m, err := mapped.New(&mapped.Options{Name: "access", Reserve: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Jump(n); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = m.Close() })
	return m
}

// newPaged returns paged memory with 1 MiB pages holding n zero bytes.
func newPaged(b *testing.B, n int) *paged.Memory {
	p, err := paged.New(&paged.Options{Name: "access", Reserve: 1 << 30, PageSize: PagedPageSize})
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Jump(n); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}

// The timed operations. Each is a function of its own, called once per
// b.Loop iteration, so the accessors inline into a plain loop exactly as they
// would in an application (the body of a b.Loop loop is compiled specially).

// SumInt32 reads the Values int32s at offsets 4i of m and sums them.
func SumInt32(m *mapped.Memory) (sum int64) {
	for i := range Values {
		sum += int64(m.Int32(4 * i))
	}
	return sum
}

// SumInt32Paged is SumInt32 for paged memory.
func SumInt32Paged(m *paged.Memory) (sum int64) {
	for i := range Values {
		sum += int64(m.Int32(4 * i))
	}
	return sum
}

// SumInt32Slice is SumInt32 for a slice.
func SumInt32Slice(m []byte) (sum int64) {
	for i := range Values {
		sum += int64(int32(binary.LittleEndian.Uint32(m[4*i:])))
	}
	return sum
}

// SumInt32SliceNoBCE is SumInt32Slice with a hint (reslicing m to its known
// length) that lets the compiler drop every bounds check in the loop: the
// absolute limit, which no per-access bounds check can reach. It is not a
// suite impl; BenchmarkSliceNoBoundsChecks in package mapped reports it.
func SumInt32SliceNoBCE(m []byte) (sum int64) {
	m = m[:4*Values]
	for i := range Values {
		sum += int64(int32(binary.LittleEndian.Uint32(m[4*i:])))
	}
	return sum
}

// SumInt64SliceNoBCE is SumInt64Slice with the same hint.
func SumInt64SliceNoBCE(m []byte) (sum int64) {
	m = m[:8*Values]
	for i := range Values {
		sum += int64(binary.LittleEndian.Uint64(m[8*i:]))
	}
	return sum
}

// PutInt32s writes int32 i at offset 4i of m for i < Values.
func PutInt32s(m *mapped.Memory) {
	for i := range Values {
		m.PutInt32(4*i, int32(i))
	}
}

// PutInt32sPaged is PutInt32s for paged memory.
func PutInt32sPaged(m *paged.Memory) {
	for i := range Values {
		m.PutInt32(4*i, int32(i))
	}
}

// PutInt32sSlice is PutInt32s for a slice.
func PutInt32sSlice(m []byte) {
	for i := range Values {
		binary.LittleEndian.PutUint32(m[4*i:], uint32(i))
	}
}

// SumInt64 reads the Values int64s at offsets 8i of m and sums them.
func SumInt64(m *mapped.Memory) (sum int64) {
	for i := range Values {
		sum += m.Int64(8 * i)
	}
	return sum
}

// SumInt64Paged is SumInt64 for paged memory.
func SumInt64Paged(m *paged.Memory) (sum int64) {
	for i := range Values {
		sum += m.Int64(8 * i)
	}
	return sum
}

// SumInt64Slice is SumInt64 for a slice.
func SumInt64Slice(m []byte) (sum int64) {
	for i := range Values {
		sum += int64(binary.LittleEndian.Uint64(m[8*i:]))
	}
	return sum
}

// PutInt64s writes int64 i at offset 8i of m for i < Values.
func PutInt64s(m *mapped.Memory) {
	for i := range Values {
		m.PutInt64(8*i, int64(i))
	}
}

// PutInt64sPaged is PutInt64s for paged memory.
func PutInt64sPaged(m *paged.Memory) {
	for i := range Values {
		m.PutInt64(8*i, int64(i))
	}
}

// PutInt64sSlice is PutInt64s for a slice.
func PutInt64sSlice(m []byte) {
	for i := range Values {
		binary.LittleEndian.PutUint64(m[8*i:], uint64(i))
	}
}

func intReadContiguous(b *testing.B) {
	m := newContiguous(b, 4*Values)
	PutInt32s(m)
	loop(b, func() int64 { return SumInt32(m) })
}

func intReadPaged(b *testing.B) {
	m := newPaged(b, 4*Values)
	PutInt32sPaged(m)
	loop(b, func() int64 { return SumInt32Paged(m) })
}

func intReadSlice(b *testing.B) {
	m := make([]byte, 4*Values)
	PutInt32sSlice(m)
	loop(b, func() int64 { return SumInt32Slice(m) })
}

func intWriteContiguous(b *testing.B) {
	m := newContiguous(b, 4*Values)
	loop(b, func() int64 { PutInt32s(m); return 0 })
}

func intWritePaged(b *testing.B) {
	m := newPaged(b, 4*Values)
	loop(b, func() int64 { PutInt32sPaged(m); return 0 })
}

func intWriteSlice(b *testing.B) {
	m := make([]byte, 4*Values)
	loop(b, func() int64 { PutInt32sSlice(m); return 0 })
}

func longReadContiguous(b *testing.B) {
	m := newContiguous(b, 8*Values)
	PutInt64s(m)
	loop(b, func() int64 { return SumInt64(m) })
}

func longReadPaged(b *testing.B) {
	m := newPaged(b, 8*Values)
	PutInt64sPaged(m)
	loop(b, func() int64 { return SumInt64Paged(m) })
}

func longReadSlice(b *testing.B) {
	m := make([]byte, 8*Values)
	PutInt64sSlice(m)
	loop(b, func() int64 { return SumInt64Slice(m) })
}

func longWriteContiguous(b *testing.B) {
	m := newContiguous(b, 8*Values)
	loop(b, func() int64 { PutInt64s(m); return 0 })
}

func longWritePaged(b *testing.B) {
	m := newPaged(b, 8*Values)
	loop(b, func() int64 { PutInt64sPaged(m); return 0 })
}

func longWriteSlice(b *testing.B) {
	m := make([]byte, 8*Values)
	loop(b, func() int64 { PutInt64sSlice(m); return 0 })
}

// NoBCE returns the Go benchmarks of IntRead and LongRead done by
// SumInt32SliceNoBCE and SumInt64SliceNoBCE.
func NoBCE() map[string]func(b *testing.B) {
	return map[string]func(b *testing.B){
		"IntRead": func(b *testing.B) {
			m := make([]byte, 4*Values)
			PutInt32sSlice(m)
			loop(b, func() int64 { return SumInt32SliceNoBCE(m) })
		},
		"LongRead": func(b *testing.B) {
			m := make([]byte, 8*Values)
			PutInt64sSlice(m)
			loop(b, func() int64 { return SumInt64SliceNoBCE(m) })
		},
	}
}

// loop times op, one call per iteration, and keeps its results.
func loop(b *testing.B, op func() int64) {
	b.ReportAllocs()
	var sum int64
	for b.Loop() {
		sum += op()
	}
	Sink = sum
}

// RandomStrings returns n strings as QuestDB's string benchmarks make them:
// length r%4 for a random signed int32 r, so a negative r gives an empty
// string (about 5/8 are empty), of random letters 'B' to 'Z'.
func RandomStrings(n int, seed uint64) []string {
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]string, n)
	for i := range out {
		k := max(int(int32(rnd.Uint32())%4), 0)
		b := make([]byte, k)
		for j := range b {
			b[j] = 'B' + byte(rnd.IntN(25))
		}
		out[i] = string(b)
	}
	return out
}

// SumStrLens reads the Strings strings of m at the offsets stored in offs
// and sums their lengths.
func SumStrLens(m, offs *mapped.Memory) (sum int64) {
	for i := range Strings {
		s, _ := m.Str(int(offs.Int64(8 * i)))
		sum += int64(len(s))
	}
	return sum
}

// SumStrLensPaged is SumStrLens for paged memory.
func SumStrLensPaged(m, offs *paged.Memory) (sum int64) {
	for i := range Strings {
		s, _ := m.Str(int(offs.Int64(8 * i)))
		sum += int64(len(s))
	}
	return sum
}

// SumStrLensSlice is SumStrLens for slices.
func SumStrLensSlice(m, offs []byte) (sum int64) {
	for i := range Strings {
		off := int(binary.LittleEndian.Uint64(offs[8*i:]))
		n := int(int32(binary.LittleEndian.Uint32(m[off:])))
		s := m[off+4 : off+4+max(n, 0)]
		sum += int64(len(s))
	}
	return sum
}

func strReadContiguous(b *testing.B) {
	m, offs := newContiguous(b, 0), newContiguous(b, 0)
	for _, s := range RandomStrings(Strings, 1) {
		if err := offs.AppendInt64(int64(m.Len())); err != nil {
			b.Fatal(err)
		}
		if err := m.AppendStr(s); err != nil {
			b.Fatal(err)
		}
	}
	loop(b, func() int64 { return SumStrLens(m, offs) })
}

func strReadPaged(b *testing.B) {
	m, offs := newPaged(b, 0), newPaged(b, 0)
	for _, s := range RandomStrings(Strings, 1) {
		if err := offs.AppendInt64(int64(m.Len())); err != nil {
			b.Fatal(err)
		}
		if err := m.AppendStr(s); err != nil {
			b.Fatal(err)
		}
	}
	loop(b, func() int64 { return SumStrLensPaged(m, offs) })
}

func strReadSlice(b *testing.B) {
	var m, offs []byte
	for _, s := range RandomStrings(Strings, 1) {
		offs = binary.LittleEndian.AppendUint64(offs, uint64(len(m)))
		m = binary.LittleEndian.AppendUint32(m, uint32(len(s)))
		m = append(m, s...)
	}
	loop(b, func() int64 { return SumStrLensSlice(m, offs) })
}

func strWriteContiguous(b *testing.B) {
	m := newContiguous(b, 0)
	strs := RandomStrings(strPool, 2)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.AppendStr(strs[i%strPool]); err != nil {
			b.Fatal(err)
		}
		if i++; i%strResetEvery == 0 {
			_ = m.Jump(0)
		}
	}
	Sink = int64(m.Len())
}

func strWritePaged(b *testing.B) {
	m := newPaged(b, 0)
	strs := RandomStrings(strPool, 2)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.AppendStr(strs[i%strPool]); err != nil {
			b.Fatal(err)
		}
		if i++; i%strResetEvery == 0 {
			_ = m.Jump(0)
		}
	}
	Sink = int64(m.Len())
}

func strWriteSlice(b *testing.B) {
	m := make([]byte, 0, 1<<20)
	strs := RandomStrings(strPool, 2)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := strs[i%strPool]
		m = binary.LittleEndian.AppendUint32(m, uint32(len(s)))
		m = append(m, s...)
		if i++; i%strResetEvery == 0 {
			m = m[:0]
		}
	}
	Sink = int64(len(m))
}
