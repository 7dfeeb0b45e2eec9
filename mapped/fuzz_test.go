package mapped_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/internal/fuzzops"
	"github.com/offheap/offheap/internal/paged"
	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

// fuzzReserve is the reservation of every memory FuzzMemory drives.
const fuzzReserve = 64 << 10

// memoryModel is FuzzMemory's reference: a plain []byte holding the written
// prefix, where a forward jump exposes zeros and an append that does not fit
// the reservation changes nothing. Each method does one operation to every
// memory (contiguous anonymous, contiguous file, paged with 16-byte pages)
// and to the model, and checks each memory's answer; check compares them
// all after every operation.
type memoryModel struct {
	t       *testing.T
	mems    []mem // mems[1] is the file, closed and reopened by reopen
	path    string
	written []byte
}

func newMemoryModel(t *testing.T) *memoryModel {
	m := &memoryModel{t: t, path: filepath.Join(t.TempDir(), "m")}
	anon, err := mapped.New(&mapped.Options{Reserve: fuzzReserve, ExtendSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := paged.New(&paged.Options{Reserve: fuzzReserve, PageSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	m.mems = []mem{anon, m.openFile(), pg}
	return m
}

func (m *memoryModel) openFile() *mapped.Memory {
	f, err := mapped.OpenFile(m.path, &mapped.Options{Reserve: fuzzReserve, ExtendSize: 4096})
	if err != nil {
		m.t.Fatal(err)
	}
	return f
}

func (m *memoryModel) close() {
	for _, x := range m.mems {
		_ = x.Close()
	}
}

// inRange reports whether n bytes at off lie in the written prefix.
func (m *memoryModel) inRange(off, n int) bool { return off >= 0 && off+n <= len(m.written) }

// grew appends enc to the model when it fits the reservation, as the
// memories must have.
func (m *memoryModel) grew(enc []byte) {
	if len(m.written)+len(enc) <= fuzzReserve {
		m.written = append(m.written, enc...)
	}
}

// appendFixed appends v as a value of type ft.
func (m *memoryModel) appendFixed(ft fixed, v uint64) {
	for _, x := range m.mems {
		appendChecked(m.t, x, len(m.written), ft.w, fuzzReserve, func() error { return ft.add(x, v) })
	}
	m.grew(ft.encode(v))
}

// putFixed puts v as a value of type ft at off, which panics out of range.
func (m *memoryModel) putFixed(ft fixed, off int, v uint64) {
	ok := m.inRange(off, ft.w)
	for _, x := range m.mems {
		if p, _ := panics(func() { ft.put(x, off, v) }); p == ok {
			m.t.Fatalf("%T put %s at %d of %d: panicked %v", x, ft.name, off, len(m.written), p)
		}
	}
	if ok {
		copy(m.written[off:], ft.encode(v))
	}
}

// getFixed reads a value of type ft at off, which panics out of range.
func (m *memoryModel) getFixed(ft fixed, off int) {
	ok := m.inRange(off, ft.w)
	for _, x := range m.mems {
		var got uint64
		if p, _ := panics(func() { got = ft.get(x, off) }); p == ok {
			m.t.Fatalf("%T get %s at %d of %d: panicked %v", x, ft.name, off, len(m.written), p)
		}
		if !ok {
			continue
		}
		if want := ft.decode(m.written[off : off+ft.w]); got != want {
			m.t.Fatalf("%T get %s at %d: %#x want %#x", x, ft.name, off, got, want)
		}
	}
}

// appendSized appends a string (kind 0), binary value (1) or null (2) of n
// letters, or (3) the same bytes as a string, raw.
func (m *memoryModel) appendSized(kind, n int) {
	s := bytes.Repeat([]byte{byte('a' + n%26)}, n)
	enc := binary.NativeEndian.AppendUint32(nil, uint32(n))
	if kind == 2 {
		enc = binary.NativeEndian.AppendUint32(nil, 0xffffffff)
	}
	enc = append(enc, s...)
	if kind == 2 {
		enc = enc[:4]
	}
	for _, x := range m.mems {
		appendChecked(m.t, x, len(m.written), len(enc), fuzzReserve, func() error {
			switch kind {
			case 0:
				return x.AppendStr(string(s))
			case 1:
				return x.AppendBin(s)
			case 2:
				return x.AppendNull()
			}
			return x.AppendBytes(enc)
		})
	}
	m.grew(enc)
}

// readStr reads a string and a binary value at off, as the model parses it.
func (m *memoryModel) readStr(off int) {
	want, null, ok := modelStr(m.written, off)
	for _, x := range m.mems {
		var got string
		var notNull bool
		if p, _ := panics(func() { got, notNull = x.Str(off) }); p == ok {
			m.t.Fatalf("%T Str at %d of %d: panicked %v", x, off, len(m.written), p)
		}
		if ok && (got != want || notNull == null) {
			m.t.Fatalf("%T Str at %d: %q %v want %q null %v", x, off, got, notNull, want, null)
		}
		if ok && !null && !bytes.Equal(x.Bin(off), []byte(want)) {
			m.t.Fatalf("%T Bin at %d differs from Str", x, off)
		}
	}
}

// jump moves the append offset to off: negative is ErrOffset, past the
// reservation ErrExhausted, and either changes nothing.
func (m *memoryModel) jump(off int) {
	for _, x := range m.mems {
		err := x.Jump(off)
		switch {
		case off < 0 && !errors.Is(err, mapped.ErrOffset),
			off > fuzzReserve && !errors.Is(err, vmem.ErrExhausted),
			off >= 0 && off <= fuzzReserve && err != nil:
			m.t.Fatalf("%T Jump(%d): %v", x, off, err)
		}
	}
	if off >= 0 && off <= fuzzReserve {
		m.resize(off)
	}
}

// resize cuts the model to end or extends it with zeros.
func (m *memoryModel) resize(end int) {
	if end < len(m.written) {
		m.written = m.written[:end]
	} else {
		m.written = append(m.written, make([]byte, end-len(m.written))...)
	}
}

// compareBytes compares n bytes at off, which panics out of range.
func (m *memoryModel) compareBytes(off, n int) {
	ok := m.inRange(off, n)
	for _, x := range m.mems {
		var got []byte
		if p, _ := panics(func() { got = x.Bytes(off, n) }); p == ok {
			m.t.Fatalf("%T Bytes(%d, %d) of %d: panicked %v", x, off, n, len(m.written), p)
		}
		if ok && !bytes.Equal(got, m.written[off:off+n]) {
			m.t.Fatalf("%T Bytes(%d, %d) differ", x, off, n)
		}
	}
}

// putBytes puts n bytes at off, as a string (with its length) when n is
// even; out of range it panics.
func (m *memoryModel) putBytes(off, n int) {
	s := bytes.Repeat([]byte{byte(n)}, n)
	asStr := n%2 == 0
	w := n
	if asStr {
		w += 4
	}
	ok := m.inRange(off, w)
	for _, x := range m.mems {
		put := func() { x.PutBytes(off, s) }
		if asStr {
			put = func() { x.PutStr(off, string(s)) }
		}
		if p, _ := panics(put); p == ok {
			m.t.Fatalf("%T put %d bytes at %d of %d: panicked %v", x, w, off, len(m.written), p)
		}
	}
	if ok && asStr {
		binary.NativeEndian.PutUint32(m.written[off:], uint32(n))
		copy(m.written[off+4:], s)
	} else if ok {
		copy(m.written[off:], s)
	}
}

// reopen closes and reopens the file, and syncs every memory.
func (m *memoryModel) reopen() {
	if err := m.mems[1].Close(); err != nil {
		m.t.Fatal(err)
	}
	m.mems[1] = m.openFile()
	for _, x := range m.mems {
		if err := x.Sync(); err != nil {
			m.t.Fatal(err)
		}
	}
}

// skip moves the append offset by n, with Jump's errors.
func (m *memoryModel) skip(n int) {
	end := len(m.written) + n
	for _, x := range m.mems {
		err := x.Skip(n)
		if end < 0 && !errors.Is(err, mapped.ErrOffset) || end > fuzzReserve && !errors.Is(err, vmem.ErrExhausted) ||
			end >= 0 && end <= fuzzReserve && err != nil {
			m.t.Fatalf("%T Skip(%d) at %d: %v", x, n, len(m.written), err)
		}
	}
	if end >= 0 && end <= fuzzReserve {
		m.resize(end)
	}
}

// appendLarge appends n bytes, which may not fit.
func (m *memoryModel) appendLarge(n int) {
	b := bytes.Repeat([]byte{7}, n)
	for _, x := range m.mems {
		appendChecked(m.t, x, len(m.written), n, fuzzReserve, func() error { return x.AppendBytes(b) })
	}
	m.grew(b)
}

// check compares every memory with the model, whole.
func (m *memoryModel) check() {
	for _, x := range m.mems {
		if x.Len() != len(m.written) || !bytes.Equal(x.Bytes(0, x.Len()), m.written) {
			m.t.Fatalf("%T: Len %d, model %d; contents equal %v", x, x.Len(), len(m.written), bytes.Equal(x.Bytes(0, x.Len()), m.written))
		}
	}
}

// FuzzMemory runs one random operation sequence on contiguous anonymous
// memory, contiguous file memory (closed and reopened on the way) and paged
// memory, and checks each against memoryModel.
func FuzzMemory(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 2, 3, 0, 0, 4, 5, 104, 105, 8, 3})
	f.Add([]byte{5, 200, 1, 1, 7, 9, 9, 10, 2, 1, 0, 5, 3, 6, 10, 255, 255, 8, 0, 3})
	f.Add([]byte{3, 7, 3, 0, 3, 1, 6, 9, 0, 6, 4, 40, 7, 4, 0, 6, 11, 0, 4, 4, 1, 2})
	f.Add([]byte{10, 255, 200, 10, 255, 255, 0, 7, 1, 8, 9, 1, 10, 0, 4, 9, 2, 3, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		m := newMemoryModel(t)
		defer m.close()
		ops := fuzzops.New(data)
		offset := func() int { return ops.Uint16() - 8 } // may be negative or past the end
		for ops.More() {
			switch ops.Intn(11) {
			case 0:
				ft := fixeds[ops.Intn(len(fixeds))]
				hi := uint64(ops.Byte())
				m.appendFixed(ft, hi*0x0101010101010101^uint64(ops.Byte()))
			case 1:
				ft, off := fixeds[ops.Intn(len(fixeds))], offset()
				m.putFixed(ft, off, uint64(ops.Byte())*0x0102030405060708)
			case 2:
				ft := fixeds[ops.Intn(len(fixeds))]
				m.getFixed(ft, offset())
			case 3:
				kind := ops.Intn(4)
				m.appendSized(kind, ops.Intn(40))
			case 4:
				m.readStr(offset())
			case 5:
				m.jump(offset() * 2)
			case 6:
				off := offset()
				m.compareBytes(off, ops.Intn(64))
			case 7:
				off := offset()
				m.putBytes(off, ops.Intn(24))
			case 8:
				m.reopen()
			case 9:
				m.skip(ops.Byte() - 128)
			case 10:
				m.appendLarge(ops.Byte() << 8)
			}
			m.check()
		}
	})
}

// appendChecked runs an append of n bytes at have and checks it succeeded
// exactly when it fits the reservation.
func appendChecked(t *testing.T, m mem, have, n, reserve int, f func() error) {
	t.Helper()
	err := f()
	if fits := have+n <= reserve; fits && err != nil || !fits && !errors.Is(err, vmem.ErrExhausted) {
		t.Fatalf("%T append %d bytes at %d: %v", m, n, have, err)
	}
}

// modelStr parses a length-prefixed value at off of the model: the string,
// whether it is null, and whether the read is in range at all.
func modelStr(model []byte, off int) (s string, null, ok bool) {
	if off < 0 || off+4 > len(model) {
		return "", false, false
	}
	n := int(int32(binary.NativeEndian.Uint32(model[off:])))
	if n < 0 {
		return "", true, true
	}
	if off+4+n > len(model) {
		return "", false, false
	}
	return string(model[off+4 : off+4+n]), false, true
}
