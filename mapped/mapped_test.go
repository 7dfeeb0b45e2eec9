package mapped_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/internal/paged"
	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

// mem is the method set Memory and the paged baseline (internal/paged) share,
// so one suite runs over both, as QuestDB runs one suite over its contiguous
// and paged memories.
type mem interface {
	Len() int
	Int8(int) int8
	Int16(int) int16
	Int32(int) int32
	Int64(int) int64
	Uint8(int) uint8
	Uint16(int) uint16
	Uint32(int) uint32
	Uint64(int) uint64
	Float32(int) float32
	Float64(int) float64
	Bool(int) bool
	PutInt8(int, int8)
	PutInt16(int, int16)
	PutInt32(int, int32)
	PutInt64(int, int64)
	PutUint8(int, uint8)
	PutUint16(int, uint16)
	PutUint32(int, uint32)
	PutUint64(int, uint64)
	PutFloat32(int, float32)
	PutFloat64(int, float64)
	PutBool(int, bool)
	AppendInt8(int8) error
	AppendInt16(int16) error
	AppendInt32(int32) error
	AppendInt64(int64) error
	AppendUint8(uint8) error
	AppendUint16(uint16) error
	AppendUint32(uint32) error
	AppendUint64(uint64) error
	AppendFloat32(float32) error
	AppendFloat64(float64) error
	AppendBool(bool) error
	Bytes(off, n int) []byte
	PutBytes(int, []byte)
	AppendBytes([]byte) error
	Str(int) (string, bool)
	Bin(int) []byte
	StrLen(int) int
	PutStr(int, string)
	PutBin(int, []byte)
	PutNull(int)
	AppendStr(string) error
	AppendBin([]byte) error
	AppendNull() error
	Jump(int) error
	Skip(int) error
	Sync() error
	Close() error
}

var (
	_ mem = (*mapped.Memory)(nil)
	_ mem = (*paged.Memory)(nil)
)

// impl makes one implementation under test; reserve caps what it may hold.
type impl struct {
	name string
	make func(t testing.TB, reserve int) mem
}

var impls = []impl{
	{"contiguous", func(t testing.TB, reserve int) mem {
		m, err := mapped.New(&mapped.Options{Name: "test", Reserve: reserve, ExtendSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}},
	{"file", func(t testing.TB, reserve int) mem {
		m, err := mapped.OpenFile(filepath.Join(t.TempDir(), "m"), &mapped.Options{Reserve: reserve, ExtendSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}},
	{"paged16", func(t testing.TB, reserve int) mem {
		p, err := paged.New(&paged.Options{Name: "test", Reserve: reserve, PageSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}},
	{"paged4k", func(t testing.TB, reserve int) mem {
		p, err := paged.New(&paged.Options{Name: "test", Reserve: reserve, PageSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}},
}

// each runs f once per implementation, closing the memory afterwards.
func each(t *testing.T, reserve int, f func(t *testing.T, m mem)) {
	for _, im := range impls {
		t.Run(im.name, func(t *testing.T) {
			m := im.make(t, reserve)
			defer func() { _ = m.Close() }()
			f(t, m)
		})
	}
}

// fixed describes one fixed-size type through uint64 bit patterns, so tests
// and the fuzz model can treat every type alike.
type fixed struct {
	name string
	w    int
	put  func(m mem, off int, v uint64)
	get  func(m mem, off int) uint64
	add  func(m mem, v uint64) error
}

var fixeds = []fixed{
	{"int8", 1, func(m mem, o int, v uint64) { m.PutInt8(o, int8(v)) }, func(m mem, o int) uint64 { return uint64(uint8(m.Int8(o))) }, func(m mem, v uint64) error { return m.AppendInt8(int8(v)) }},
	{"int16", 2, func(m mem, o int, v uint64) { m.PutInt16(o, int16(v)) }, func(m mem, o int) uint64 { return uint64(uint16(m.Int16(o))) }, func(m mem, v uint64) error { return m.AppendInt16(int16(v)) }},
	{"int32", 4, func(m mem, o int, v uint64) { m.PutInt32(o, int32(v)) }, func(m mem, o int) uint64 { return uint64(uint32(m.Int32(o))) }, func(m mem, v uint64) error { return m.AppendInt32(int32(v)) }},
	{"int64", 8, func(m mem, o int, v uint64) { m.PutInt64(o, int64(v)) }, func(m mem, o int) uint64 { return uint64(m.Int64(o)) }, func(m mem, v uint64) error { return m.AppendInt64(int64(v)) }},
	{"uint8", 1, func(m mem, o int, v uint64) { m.PutUint8(o, uint8(v)) }, func(m mem, o int) uint64 { return uint64(m.Uint8(o)) }, func(m mem, v uint64) error { return m.AppendUint8(uint8(v)) }},
	{"uint16", 2, func(m mem, o int, v uint64) { m.PutUint16(o, uint16(v)) }, func(m mem, o int) uint64 { return uint64(m.Uint16(o)) }, func(m mem, v uint64) error { return m.AppendUint16(uint16(v)) }},
	{"uint32", 4, func(m mem, o int, v uint64) { m.PutUint32(o, uint32(v)) }, func(m mem, o int) uint64 { return uint64(m.Uint32(o)) }, func(m mem, v uint64) error { return m.AppendUint32(uint32(v)) }},
	{"uint64", 8, func(m mem, o int, v uint64) { m.PutUint64(o, v) }, func(m mem, o int) uint64 { return m.Uint64(o) }, func(m mem, v uint64) error { return m.AppendUint64(v) }},
	{"float32", 4, func(m mem, o int, v uint64) { m.PutFloat32(o, math.Float32frombits(uint32(v))) }, func(m mem, o int) uint64 { return uint64(math.Float32bits(m.Float32(o))) }, func(m mem, v uint64) error { return m.AppendFloat32(math.Float32frombits(uint32(v))) }},
	{"float64", 8, func(m mem, o int, v uint64) { m.PutFloat64(o, math.Float64frombits(v)) }, func(m mem, o int) uint64 { return math.Float64bits(m.Float64(o)) }, func(m mem, v uint64) error { return m.AppendFloat64(math.Float64frombits(v)) }},
	{"bool", 1, func(m mem, o int, v uint64) { m.PutBool(o, v&1 == 1) }, func(m mem, o int) uint64 { return b2u(m.Bool(o)) }, func(m mem, v uint64) error { return m.AppendBool(v&1 == 1) }},
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// encode returns the bytes a put of v stores for type f, in native order.
func (f fixed) encode(v uint64) []byte {
	if f.name == "bool" {
		v &= 1
	}
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], v)
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 { // big-endian: low bytes are last
		return bytes.Clone(b[8-f.w:])
	}
	return bytes.Clone(b[:f.w])
}

// decode returns what a get of type f reads from b.
func (f fixed) decode(b []byte) uint64 {
	var full [8]byte
	copy(full[:], b)
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		copy(full[8-f.w:], b)
	}
	v := binary.NativeEndian.Uint64(full[:])
	if f.name == "bool" {
		return b2u(b[0] != 0)
	}
	return v
}

// panics reports whether f panics, and with a RangeError if so.
func panics(f func()) (panicked, rangeErr bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			var re mapped.RangeError
			if e, ok := r.(error); ok && errors.As(e, &re) {
				rangeErr = true
			}
		}
	}()
	f()
	return false, false
}

func contents(m mem) []byte { return bytes.Clone(m.Bytes(0, m.Len())) }

func TestRoundTripEveryTypeAtEveryAlignment(t *testing.T) {
	each(t, 1<<20, func(t *testing.T, m mem) {
		if err := m.Jump(200); err != nil {
			t.Fatal(err)
		}
		for _, f := range fixeds {
			for off := 0; off < 40; off++ { // unaligned, and straddling the 16-byte pages
				v := uint64(0x8899aabbccddeeff) ^ uint64(off)*0x0101010101010101
				f.put(m, off, v)
				if got, want := f.get(m, off), f.decode(f.encode(v)); got != want {
					t.Fatalf("%s at %d: got %#x want %#x", f.name, off, got, want)
				}
				if !bytes.Equal(m.Bytes(off, f.w), f.encode(v)) {
					t.Fatalf("%s at %d: stored bytes %x want %x", f.name, off, m.Bytes(off, f.w), f.encode(v))
				}
			}
		}
	})
}

func TestAppendsReadBack(t *testing.T) {
	each(t, 1<<20, func(t *testing.T, m mem) {
		var want []byte
		for i := range 3000 {
			f := fixeds[i%len(fixeds)]
			v := uint64(i) * 0x9e3779b97f4a7c15
			if err := f.add(m, v); err != nil {
				t.Fatal(err)
			}
			want = append(want, f.encode(v)...)
		}
		if m.Len() != len(want) || !bytes.Equal(contents(m), want) {
			t.Fatalf("Len %d want %d, contents differ: %v", m.Len(), len(want), !bytes.Equal(contents(m), want))
		}
		off := 0
		for i := range 3000 {
			f := fixeds[i%len(fixeds)]
			if got, w := f.get(m, off), f.decode(f.encode(uint64(i)*0x9e3779b97f4a7c15)); got != w {
				t.Fatalf("value %d (%s) at %d: %#x want %#x", i, f.name, off, got, w)
			}
			off += f.w
		}
	})
}

func TestStringsNullAndEmptyDiffer(t *testing.T) {
	each(t, 1<<20, func(t *testing.T, m mem) {
		vals := []string{"", "a", "hello, world", string(make([]byte, 40))}
		var offs []int
		for _, s := range vals {
			offs = append(offs, m.Len())
			if err := m.AppendStr(s); err != nil {
				t.Fatal(err)
			}
		}
		nullAt := m.Len()
		_ = m.AppendNull()
		binAt := m.Len()
		_ = m.AppendBin([]byte{1, 2, 3})
		nilAt := m.Len()
		_ = m.AppendBin(nil)
		emptyAt := m.Len()
		_ = m.AppendBin([]byte{})
		for i, s := range vals {
			got, ok := m.Str(offs[i])
			if !ok || got != s || m.StrLen(offs[i]) != len(s) {
				t.Fatalf("string %d: %q %v, StrLen %d", i, got, ok, m.StrLen(offs[i]))
			}
		}
		if s, ok := m.Str(nullAt); ok || s != "" || m.StrLen(nullAt) != -1 || m.Bin(nullAt) != nil {
			t.Fatalf("null read as %q %v", s, ok)
		}
		if b := m.Bin(binAt); !bytes.Equal(b, []byte{1, 2, 3}) {
			t.Fatalf("bin %v", b)
		}
		if m.Bin(nilAt) != nil || m.StrLen(nilAt) != -1 {
			t.Fatal("nil binary is not null")
		}
		if b := m.Bin(emptyAt); b == nil || len(b) != 0 {
			t.Fatalf("empty binary read as %v (nil %v)", b, b == nil)
		}
		m.PutStr(offs[2], "HELLO, WORLD")
		if s, _ := m.Str(offs[2]); s != "HELLO, WORLD" {
			t.Fatalf("PutStr: %q", s)
		}
		m.PutNull(offs[1])
		if _, ok := m.Str(offs[1]); ok {
			t.Fatal("PutNull did not make a null")
		}
		m.PutBin(offs[1], nil)
		m.PutBin(binAt, []byte{9, 8, 7})
		if !bytes.Equal(m.Bin(binAt), []byte{9, 8, 7}) || m.Bin(offs[1]) != nil {
			t.Fatal("PutBin")
		}
	})
}

func TestOutOfRangePanicsAndChangesNothing(t *testing.T) {
	each(t, 1<<20, func(t *testing.T, m mem) {
		for i := range 10 {
			_ = m.AppendInt8(int8(i))
		}
		before := contents(m)
		cases := map[string]func(){
			"read past end":   func() { m.Int32(7) },
			"read negative":   func() { m.Int8(-1) },
			"write past end":  func() { m.PutInt64(3, 1) },
			"write negative":  func() { m.PutInt16(-1, 1) },
			"bytes past end":  func() { m.Bytes(5, 6) },
			"bytes negative":  func() { m.Bytes(0, -1) },
			"put bytes past":  func() { m.PutBytes(8, []byte{1, 2, 3}) },
			"str past end":    func() { m.Str(8) },
			"str long length": func() { m.PutInt32(0, 100); m.Str(0) },
			"put str past":    func() { m.PutStr(4, "abc") },
			"huge offset":     func() { m.Int64(math.MaxInt - 3) },
			"min offset":      func() { m.Uint64(math.MinInt) },
		}
		for name, f := range cases {
			m.PutBytes(0, before)
			if p, re := panics(f); !p || !re {
				t.Errorf("%s: panicked %v with RangeError %v", name, p, re)
			}
		}
		m.PutBytes(0, before)
		if !bytes.Equal(contents(m), before) || m.Len() != 10 {
			t.Fatal("state changed")
		}
	})
}

func TestBadJumpChangesNothing(t *testing.T) {
	each(t, 64<<10, func(t *testing.T, m mem) {
		_ = m.AppendStr("state")
		before := contents(m)
		if err := m.Jump(-1); !errors.Is(err, mapped.ErrOffset) {
			t.Fatalf("Jump(-1): %v", err)
		}
		if err := m.Skip(-100); !errors.Is(err, mapped.ErrOffset) {
			t.Fatalf("Skip(-100): %v", err)
		}
		if err := m.Skip(math.MaxInt); !errors.Is(err, mapped.ErrOffset) && !errors.Is(err, vmem.ErrExhausted) {
			t.Fatalf("Skip(MaxInt): %v", err)
		}
		if err := m.Jump(1 << 40); !errors.Is(err, vmem.ErrExhausted) {
			t.Fatalf("Jump past the reservation: %v", err)
		}
		if m.Len() != len(before) || !bytes.Equal(contents(m), before) {
			t.Fatal("state changed")
		}
	})
}

// TestExhaustedAppendChangesNothing fills a tiny reservation: every append
// that does not fit fails with vmem.ErrExhausted and leaves the memory as it was.
func TestExhaustedAppendChangesNothing(t *testing.T) {
	const reserve = 64 << 10
	each(t, reserve, func(t *testing.T, m mem) {
		for i := 0; m.Len()+8 <= reserve; i++ {
			if err := m.AppendInt64(int64(i)); err != nil {
				t.Fatalf("append %d at %d: %v", i, m.Len(), err)
			}
		}
		if err := m.AppendInt8(1); m.Len() < reserve && err != nil {
			t.Fatal(err)
		}
		before := contents(m)
		fails := map[string]func() error{
			"int64": func() error { return m.AppendInt64(1) },
			"str":   func() error { return m.AppendStr("too long for the rest") },
			"bin":   func() error { return m.AppendBin(make([]byte, 100)) },
			"bytes": func() error { return m.AppendBytes(make([]byte, 100)) },
			"jump":  func() error { return m.Jump(reserve + 1) },
			"skip":  func() error { return m.Skip(100) },
		}
		for name, f := range fails {
			if err := f(); !errors.Is(err, vmem.ErrExhausted) {
				t.Errorf("%s: %v, want ErrExhausted", name, err)
			}
			if m.Len() != len(before) || !bytes.Equal(contents(m), before) {
				t.Fatalf("%s changed the memory", name)
			}
		}
	})
}

func TestJumpExposesZeros(t *testing.T) {
	each(t, 1<<20, func(t *testing.T, m mem) {
		for i := range 100 {
			_ = m.AppendUint8(uint8(i + 1))
		}
		if err := m.Jump(10); err != nil {
			t.Fatal(err)
		}
		if p, _ := panics(func() { m.Uint8(50) }); !p {
			t.Fatal("read past a jump back did not panic")
		}
		if err := m.Skip(90); err != nil {
			t.Fatal(err)
		}
		for i := 10; i < 100; i++ {
			if m.Uint8(i) != 0 {
				t.Fatalf("byte %d exposed by a forward jump reads %d", i, m.Uint8(i))
			}
		}
		if m.Uint8(9) != 10 {
			t.Fatal("jump changed bytes before it")
		}
	})
}

func TestClosed(t *testing.T) {
	each(t, 1<<20, func(t *testing.T, m mem) {
		_ = m.AppendInt64(7)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"close":       m.Close(),
			"append":      m.AppendInt64(1),
			"str":         m.AppendStr("x"),
			"empty str":   m.AppendStr(""),
			"empty bin":   m.AppendBin([]byte{}),
			"null":        m.AppendNull(),
			"bytes":       m.AppendBytes([]byte{1}),
			"no bytes":    m.AppendBytes(nil),
			"empty bytes": m.AppendBytes([]byte{}),
			"jump":        m.Jump(0),
			"skip":        m.Skip(0),
			"sync":        m.Sync(),
		} {
			if !errors.Is(err, mapped.ErrClosed) {
				t.Errorf("%s after Close: %v", name, err)
			}
		}
		if p, re := panics(func() { m.Int64(0) }); !p || !re {
			t.Fatal("read after Close did not panic with a RangeError")
		}
		if p, re := panics(func() { m.PutInt64(0, 1) }); !p || !re {
			t.Fatal("put after Close did not panic with a RangeError")
		}
	})
}

func TestOptionsRejected(t *testing.T) {
	for _, o := range []mapped.Options{{Reserve: -1}, {ExtendSize: -1}, {ReadOnly: true}} {
		if m, err := mapped.New(&o); !errors.Is(err, mapped.ErrOptions) {
			t.Errorf("New(%+v): %v", o, err)
			if m != nil {
				_ = m.Close()
			}
		}
	}
	for _, o := range []paged.Options{{Reserve: -1}, {PageSize: 3}, {PageSize: 4}, {PageSize: -8}} {
		if _, err := paged.New(&o); !errors.Is(err, mapped.ErrOptions) {
			t.Errorf("paged.New(%+v): %v", o, err)
		}
	}
}

// TestViewsSurviveGrowth: a zero-copy view taken early still shows the same
// bytes, at the same address, after the memory has grown many times.
func TestViewsSurviveGrowth(t *testing.T) {
	m, err := mapped.New(&mapped.Options{ExtendSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_ = m.AppendStr("early")
	s, _ := m.Str(0)
	b := m.Bin(0)
	for i := range 1 << 18 {
		if err := m.AppendInt64(int64(i)); err != nil {
			t.Fatal(err)
		}
	}
	s2, _ := m.Str(0)
	if s != "early" || string(b) != "early" || &m.Bin(0)[0] != &b[0] || s2 != s {
		t.Fatal("view changed across growth")
	}
	v := mapped.Slice[int64](m, 9, 1<<18)
	if v[12345] != 12345 || len(v) != 1<<18 {
		t.Fatal("Slice view")
	}
	if err := mapped.Append(m, float32(1.5)); err != nil || m.Float32(m.Len()-4) != 1.5 {
		t.Fatal("generic Append")
	}
	if p, re := panics(func() { mapped.Slice[int64](m, 9, 1<<20) }); !p || !re {
		t.Fatal("Slice past the end did not panic")
	}
}

func TestAccessorsDoNotAllocate(t *testing.T) {
	m, err := mapped.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p, err := paged.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, x := range []mem{m, p} {
		_ = x.AppendStr("warm")
		_ = x.Jump(0)
		n := testing.AllocsPerRun(1000, func() {
			_ = x.AppendInt64(1)
			_ = x.AppendStr("abc")
			x.PutInt32(0, 5)
			_ = x.Int64(0)
			_, _ = x.Str(8)
			_ = x.Bin(8)
			_ = x.Bytes(0, 8)
			if x.Len() > 1<<16 {
				_ = x.Jump(0)
			}
		})
		if n != 0 {
			t.Fatalf("%T: %v allocs per run", x, n)
		}
	}
}

// TestConcurrentReaders: many goroutines may read one Memory at once (run
// with -race).
func TestConcurrentReaders(t *testing.T) {
	m, err := mapped.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for i := range 1000 {
		_ = m.AppendInt64(int64(i))
	}
	done := make(chan int64)
	for range 4 {
		go func() {
			var sum int64
			for i := range 1000 {
				sum += m.Int64(8 * i)
			}
			done <- sum
		}()
	}
	for range 4 {
		if s := <-done; s != 999*1000/2 {
			t.Fatalf("sum %d", s)
		}
	}
}
