package vmem

import (
	"bytes"
	"errors"
	"testing"

	"github.com/offheap/offheap/internal/fuzzops"
)

// fuzzPages is the reservation of FuzzRegion's region, in pages.
const fuzzPages = 32

// regionModel is FuzzRegion's reference for a Region: its ready prefix as a
// plain byte slice, where released pages read back as zero. Each method does
// one operation to both and checks the region's answer.
type regionModel struct {
	t     *testing.T
	r     *Region
	ready []byte
}

// grow grows to k pages; past the reservation it must fail and change nothing.
func (m *regionModel) grow(k int) {
	p := PageSize()
	err := m.r.Grow(k * p)
	switch {
	case k > fuzzPages:
		if !errors.Is(err, ErrExhausted) {
			m.t.Fatalf("grow to %d pages: %v", k, err)
		}
	case err != nil:
		m.t.Fatal(err)
	case k*p > len(m.ready):
		m.ready = append(m.ready, make([]byte, k*p-len(m.ready))...)
	}
}

// write writes v at off of the ready prefix.
func (m *regionModel) write(off int, v byte) {
	m.r.Bytes()[off], m.ready[off] = v, v
}

// compare checks every ready byte.
func (m *regionModel) compare(when string) {
	if !bytes.Equal(m.r.Bytes(), m.ready) {
		m.t.Fatalf("region differs from model %s", when)
	}
}

// releaseReuse releases n pages at page at and makes them ready again; past
// the ready prefix it must fail with ErrInvalidSize.
func (m *regionModel) releaseReuse(at, n int) {
	p := PageSize()
	err := m.r.Release(at*p, n*p)
	if (at+n)*p > len(m.ready) {
		if !errors.Is(err, ErrInvalidSize) {
			m.t.Fatalf("release [%d,+%d) pages past ready: %v", at, n, err)
		}
		return
	}
	if err != nil {
		m.t.Fatal(err)
	}
	clear(m.ready[at*p : (at+n)*p])
	if err := m.r.Reuse(at*p, n*p); err != nil {
		m.t.Fatal(err)
	}
}

// releaseUnaligned releases a page at an unaligned offset, which must fail
// and change nothing.
func (m *regionModel) releaseUnaligned(off int) {
	if err := m.r.Release(off, PageSize()); !errors.Is(err, ErrUnaligned) && !errors.Is(err, ErrInvalidSize) {
		m.t.Fatalf("unaligned release: %v", err)
	}
}

// protect makes the first page read-only and writable again.
func (m *regionModel) protect() {
	if err := m.r.Protect(0, PageSize(), ProtRead); err != nil {
		m.t.Fatal(err)
	}
	if err := m.r.Protect(0, PageSize(), ProtReadWrite); err != nil {
		m.t.Fatal(err)
	}
}

// check compares the region's length with the model's, after every operation.
func (m *regionModel) check() {
	if m.r.Len() != len(m.ready) {
		m.t.Fatalf("Len %d, model %d", m.r.Len(), len(m.ready))
	}
}

// FuzzRegion runs random operation sequences on a Region and checks it
// against regionModel.
func FuzzRegion(f *testing.F) {
	f.Add([]byte{0, 4, 1, 9, 200, 3, 1, 1, 2, 0, 40, 4, 2})
	f.Add([]byte{0, 32, 1, 0, 1, 1, 31, 255, 3, 0, 32, 2, 5, 2})
	f.Add([]byte{0, 1, 0, 33, 4, 0, 3, 2, 1, 1, 0, 5, 0, 2})
	p := PageSize()
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := Reserve(fuzzPages*p, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		m := &regionModel{t: t, r: r}
		ops := fuzzops.New(data)
		for ops.More() {
			switch ops.Intn(6) {
			case 0:
				m.grow(ops.Intn(fuzzPages + 2))
			case 1:
				if len(m.ready) > 0 {
					off := (ops.Byte()*p + ops.Byte()*131) % len(m.ready)
					m.write(off, byte(ops.Byte()))
				}
			case 2:
				m.compare("")
			case 3:
				at := ops.Intn(fuzzPages + 1)
				m.releaseReuse(at, ops.Intn(4))
			case 4:
				m.releaseUnaligned(1 + ops.Intn(p-1))
			case 5:
				if len(m.ready) > 0 {
					m.protect()
				}
			}
			m.check()
		}
		m.compare("at the end")
	})
}
