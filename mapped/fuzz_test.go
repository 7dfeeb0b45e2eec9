package mapped_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/internal/paged"
	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

// FuzzMemory runs one random operation sequence on contiguous anonymous
// memory, contiguous file memory (closed and reopened on the way) and paged
// memory with 16-byte pages, and checks each against a model: a plain []byte
// holding the written prefix, where a forward jump exposes zeros and an
// append that does not fit the 64 KiB reservation changes nothing.
func FuzzMemory(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 3, 4, 5, 6, 7, 8, 2, 3, 0, 0, 4, 5, 104, 105, 8, 3})
	f.Add([]byte{5, 200, 1, 1, 7, 9, 9, 10, 2, 1, 0, 5, 3, 6, 10, 255, 255, 8, 0, 3})
	f.Add([]byte{3, 7, 3, 0, 3, 1, 6, 9, 0, 6, 4, 40, 7, 4, 0, 6, 11, 0, 4, 4, 1, 2})
	f.Add([]byte{10, 255, 200, 10, 255, 255, 0, 7, 1, 8, 9, 1, 10, 0, 4, 9, 2, 3, 4})
	const reserve = 64 << 10
	f.Fuzz(func(t *testing.T, ops []byte) {
		path := filepath.Join(t.TempDir(), "m")
		open := func() *mapped.Memory {
			m, err := mapped.OpenFile(path, &mapped.Options{Reserve: reserve, ExtendSize: 4096})
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		anon, err := mapped.New(&mapped.Options{Reserve: reserve, ExtendSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		pg, err := paged.New(&paged.Options{Reserve: reserve, PageSize: 16})
		if err != nil {
			t.Fatal(err)
		}
		file := open()
		mems := []mem{anon, file, pg}
		defer func() {
			for _, m := range mems {
				_ = m.Close()
			}
		}()
		var model []byte
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			v := int(ops[0])
			ops = ops[1:]
			return v
		}
		offset := func() int { return next()<<8 | next() - 8 } // may be negative or past the end
		for len(ops) > 0 {
			switch next() % 11 {
			case 0: // append a fixed-size value
				ft := fixeds[next()%len(fixeds)]
				v := uint64(next())*0x0101010101010101 ^ uint64(next())
				for _, m := range mems {
					appendChecked(t, m, len(model), ft.w, reserve, func() error { return ft.add(m, v) })
				}
				if len(model)+ft.w <= reserve {
					model = append(model, ft.encode(v)...)
				}
			case 1: // put a fixed-size value anywhere
				ft, off := fixeds[next()%len(fixeds)], offset()
				v := uint64(next()) * 0x0102030405060708
				ok := off >= 0 && off+ft.w <= len(model)
				for _, m := range mems {
					if p, _ := panics(func() { ft.put(m, off, v) }); p == ok {
						t.Fatalf("%T put %s at %d of %d: panicked %v", m, ft.name, off, len(model), p)
					}
				}
				if ok {
					copy(model[off:], ft.encode(v))
				}
			case 2: // get a fixed-size value anywhere
				ft, off := fixeds[next()%len(fixeds)], offset()
				ok := off >= 0 && off+ft.w <= len(model)
				for _, m := range mems {
					var got uint64
					if p, _ := panics(func() { got = ft.get(m, off) }); p == ok {
						t.Fatalf("%T get %s at %d of %d: panicked %v", m, ft.name, off, len(model), p)
					}
					if ok && got != ft.decode(model[off:off+ft.w]) {
						t.Fatalf("%T get %s at %d: %#x want %#x", m, ft.name, off, got, ft.decode(model[off:off+ft.w]))
					}
				}
			case 3: // append a string, binary value or null
				kind, n := next()%4, next()%40
				s := bytes.Repeat([]byte{byte('a' + n%26)}, n)
				enc := binary.NativeEndian.AppendUint32(nil, uint32(n))
				if kind == 2 {
					enc = binary.NativeEndian.AppendUint32(nil, 0xffffffff)
				}
				enc = append(enc, s...)
				if kind == 2 {
					enc = enc[:4]
				}
				for _, m := range mems {
					appendChecked(t, m, len(model), len(enc), reserve, func() error {
						switch kind {
						case 0:
							return m.AppendStr(string(s))
						case 1:
							return m.AppendBin(s)
						case 2:
							return m.AppendNull()
						}
						return m.AppendBytes(enc)
					})
				}
				if len(model)+len(enc) <= reserve {
					model = append(model, enc...)
				}
			case 4: // read a string at any offset, as the model parses it
				off := offset()
				want, null, ok := modelStr(model, off)
				for _, m := range mems {
					var got string
					var notNull bool
					if p, _ := panics(func() { got, notNull = m.Str(off) }); p == ok {
						t.Fatalf("%T Str at %d of %d: panicked %v", m, off, len(model), p)
					}
					if ok && (got != want || notNull == null) {
						t.Fatalf("%T Str at %d: %q %v want %q null %v", m, off, got, notNull, want, null)
					}
					if ok && !null && !bytes.Equal(m.Bin(off), []byte(want)) {
						t.Fatalf("%T Bin at %d differs from Str", m, off)
					}
				}
			case 5: // jump
				off := offset() * 2
				for _, m := range mems {
					err := m.Jump(off)
					switch {
					case off < 0 && !errors.Is(err, mapped.ErrOffset),
						off > reserve && !errors.Is(err, vmem.ErrExhausted),
						off >= 0 && off <= reserve && err != nil:
						t.Fatalf("%T Jump(%d): %v", m, off, err)
					}
				}
				if off >= 0 && off <= reserve {
					if off < len(model) {
						model = model[:off]
					} else {
						model = append(model, make([]byte, off-len(model))...)
					}
				}
			case 6: // compare a byte range
				off, n := offset(), next()%64
				ok := off >= 0 && off+n <= len(model)
				for _, m := range mems {
					var got []byte
					if p, _ := panics(func() { got = m.Bytes(off, n) }); p == ok {
						t.Fatalf("%T Bytes(%d, %d) of %d: panicked %v", m, off, n, len(model), p)
					}
					if ok && !bytes.Equal(got, model[off:off+n]) {
						t.Fatalf("%T Bytes(%d, %d) differ", m, off, n)
					}
				}
			case 7: // put bytes or a string anywhere
				off, n := offset(), next()%24
				s := bytes.Repeat([]byte{byte(n)}, n)
				asStr := n%2 == 0
				w := n
				if asStr {
					w += 4
				}
				ok := off >= 0 && off+w <= len(model)
				for _, m := range mems {
					put := func() { m.PutBytes(off, s) }
					if asStr {
						put = func() { m.PutStr(off, string(s)) }
					}
					if p, _ := panics(put); p == ok {
						t.Fatalf("%T put %d bytes at %d of %d: panicked %v", m, w, off, len(model), p)
					}
				}
				if ok && asStr {
					binary.NativeEndian.PutUint32(model[off:], uint32(n))
					copy(model[off+4:], s)
				} else if ok {
					copy(model[off:], s)
				}
			case 8: // close and reopen the file; sync the others
				if err := file.Close(); err != nil {
					t.Fatal(err)
				}
				file = open()
				mems[1] = file
				for _, m := range mems {
					if err := m.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			case 9: // skip
				n := next() - 128
				for _, m := range mems {
					err := m.Skip(n)
					end := len(model) + n
					if end < 0 && !errors.Is(err, mapped.ErrOffset) || end > reserve && !errors.Is(err, vmem.ErrExhausted) ||
						end >= 0 && end <= reserve && err != nil {
						t.Fatalf("%T Skip(%d) at %d: %v", m, n, len(model), err)
					}
				}
				if end := len(model) + n; end >= 0 && end < len(model) {
					model = model[:end]
				} else if end >= 0 && end <= reserve {
					model = append(model, make([]byte, n)...)
				}
			case 10: // a large append, which may not fit
				n := next() << 8
				b := bytes.Repeat([]byte{7}, n)
				for _, m := range mems {
					appendChecked(t, m, len(model), n, reserve, func() error { return m.AppendBytes(b) })
				}
				if len(model)+n <= reserve {
					model = append(model, b...)
				}
			}
			for _, m := range mems {
				if m.Len() != len(model) || !bytes.Equal(m.Bytes(0, m.Len()), model) {
					t.Fatalf("%T: Len %d, model %d; contents equal %v", m, m.Len(), len(model), bytes.Equal(m.Bytes(0, m.Len()), model))
				}
			}
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
