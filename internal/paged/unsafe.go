// The one place paged turns offsets into pointers: the fast paths of the
// accessors (a value in the hot or append page), zero-copy views of bytes
// that lie in one page, and the byte views the slow paths copy through.
//
// Why the conversions here are sound: every pointer is a page's base (its
// region's vmem.Region.Base, made ready in full when obtained) plus an
// offset inside that page, where the page is a live vmem mapping (never Go
// heap memory, so the collector neither moves nor frees it) and the offset
// was first checked against the written prefix and the page's bounds; the
// values are fixed-size numbers with no pointers inside, so unaligned
// pointers to them are allowed; Close clears every cached page and length
// before unmapping, so a later access fails its bounds check instead of
// touching unmapped memory.

package paged

import (
	"unsafe"

	"github.com/offheap/offheap/mapped"
)

// pointer is the address type of a page; only this file converts it.
type pointer = unsafe.Pointer

// sizeOf is the size of T in bytes.
func sizeOf[T mapped.Number]() int {
	var z T
	return int(unsafe.Sizeof(z))
}

// bytesAt returns n bytes at p as a slice whose capacity is n.
func bytesAt(p pointer, n int) []byte { return unsafe.Slice((*byte)(p), n) }

// pload reads a T at off of a page (a slow path: generic is fine here).
func pload[T mapped.Number](page pointer, off int) T { return *(*T)(unsafe.Add(page, off)) }

// pstore writes v at off of a page.
func pstore[T mapped.Number](page pointer, off int, v T) { *(*T)(unsafe.Add(page, off)) = v }

// pbytes returns n bytes at off within a page starting at base.
func pbytes(base pointer, off, n int) []byte { return bytesAt(unsafe.Add(base, off), n) }

// asBytes returns the bytes of *v, in the same order a direct store would
// lay them out: how Memory assembles a value that straddles a page edge. v
// points to a variable of a pointer-free type.
func asBytes[T mapped.Number](v *T) []byte { return bytesAt(unsafe.Pointer(v), sizeOf[T]()) }

// Str returns the string at off and true, or "" and false for a null string.
// It shares the memory when the string lies in one page and is a copy
// otherwise.
func (p *Memory) Str(off int) (string, bool) {
	n := int(int32(p.u32(off)))
	if n < 0 {
		return "", false
	}
	s := off + 4
	if s >= p.hotLo && s <= p.hotHi-n {
		return unsafe.String((*byte)(unsafe.Add(p.hot, s-p.hotLo)), n), true
	}
	return string(p.Bytes(s, n)), true
}

// Bytes returns the n written bytes at off: a view valid until Close when
// they lie in one page, a copy otherwise.
func (p *Memory) Bytes(off, n int) []byte {
	p.inRange("read", off, n)
	if n == 0 {
		return []byte{}
	}
	if p.within(off, n) {
		return pbytes(p.pages.bases[off>>p.shift], off&(p.size-1), n)
	}
	b := make([]byte, n)
	p.gather(b, off)
	return b
}

// pappendSized appends an int32 length and the bytes of s, into the cached
// append page when they fit there.
func pappendSized[S ~string | ~[]byte](p *Memory, s S) error {
	if p.len <= p.appHi-4-len(s) {
		o := unsafe.Add(p.app, p.len-p.appLo)
		*(*int32)(o) = int32(len(s))
		copy(bytesAt(unsafe.Add(o, 4), len(s)), s)
		p.len += 4 + len(s)
		return nil
	}
	return pappendSizedSlow(p, s)
}

// AppendStr appends s as an int32 length and its bytes.
func (p *Memory) AppendStr(s string) error {
	if p.len <= p.appHi-4-len(s) {
		o := unsafe.Add(p.app, p.len-p.appLo)
		*(*int32)(o) = int32(len(s))
		copy(bytesAt(unsafe.Add(o, 4), len(s)), s)
		p.len += 4 + len(s)
		return nil
	}
	return pappendSizedSlow(p, s)
}

// u8 reads the uint8 at off, from the hot page when it holds the value.
func (p *Memory) u8(off int) uint8 {
	if off >= p.hotLo && off <= p.hotHi-1 {
		return *(*uint8)(unsafe.Add(p.hot, off-p.hotLo))
	}
	return p.slow8(off)
}

// put8 writes v at off, to the hot page when it holds the value.
func (p *Memory) put8(off int, v uint8) {
	if off >= p.hotLo && off <= p.hotHi-1 {
		*(*uint8)(unsafe.Add(p.hot, off-p.hotLo)) = v
		return
	}
	p.putSlow8(off, v)
}

// add8 appends v, to the cached append page when it has room.
func (p *Memory) add8(v uint8) error {
	if p.len <= p.appHi-1 {
		*(*uint8)(unsafe.Add(p.app, p.len-p.appLo)) = v
		p.len += 1
		return nil
	}
	return paddSlow(p, v)
}

// slow8 reads the uint8 at off outside the hot page.
func (p *Memory) slow8(off int) uint8 { return pgetSlow[uint8](p, off) }

// putSlow8 writes v at off outside the hot page.
func (p *Memory) putSlow8(off int, v uint8) { pputSlow(p, off, v) }

// u16 reads the uint16 at off, from the hot page when it holds the value.
func (p *Memory) u16(off int) uint16 {
	if off >= p.hotLo && off <= p.hotHi-2 {
		return *(*uint16)(unsafe.Add(p.hot, off-p.hotLo))
	}
	return p.slow16(off)
}

// put16 writes v at off, to the hot page when it holds the value.
func (p *Memory) put16(off int, v uint16) {
	if off >= p.hotLo && off <= p.hotHi-2 {
		*(*uint16)(unsafe.Add(p.hot, off-p.hotLo)) = v
		return
	}
	p.putSlow16(off, v)
}

// add16 appends v, to the cached append page when it has room.
func (p *Memory) add16(v uint16) error {
	if p.len <= p.appHi-2 {
		*(*uint16)(unsafe.Add(p.app, p.len-p.appLo)) = v
		p.len += 2
		return nil
	}
	return paddSlow(p, v)
}

// slow16 reads the uint16 at off outside the hot page.
func (p *Memory) slow16(off int) uint16 { return pgetSlow[uint16](p, off) }

// putSlow16 writes v at off outside the hot page.
func (p *Memory) putSlow16(off int, v uint16) { pputSlow(p, off, v) }

// u32 reads the uint32 at off, from the hot page when it holds the value.
func (p *Memory) u32(off int) uint32 {
	if off >= p.hotLo && off <= p.hotHi-4 {
		return *(*uint32)(unsafe.Add(p.hot, off-p.hotLo))
	}
	return p.slow32(off)
}

// put32 writes v at off, to the hot page when it holds the value.
func (p *Memory) put32(off int, v uint32) {
	if off >= p.hotLo && off <= p.hotHi-4 {
		*(*uint32)(unsafe.Add(p.hot, off-p.hotLo)) = v
		return
	}
	p.putSlow32(off, v)
}

// add32 appends v, to the cached append page when it has room.
func (p *Memory) add32(v uint32) error {
	if p.len <= p.appHi-4 {
		*(*uint32)(unsafe.Add(p.app, p.len-p.appLo)) = v
		p.len += 4
		return nil
	}
	return paddSlow(p, v)
}

// slow32 reads the uint32 at off outside the hot page.
func (p *Memory) slow32(off int) uint32 { return pgetSlow[uint32](p, off) }

// putSlow32 writes v at off outside the hot page.
func (p *Memory) putSlow32(off int, v uint32) { pputSlow(p, off, v) }

// u64 reads the uint64 at off, from the hot page when it holds the value.
func (p *Memory) u64(off int) uint64 {
	if off >= p.hotLo && off <= p.hotHi-8 {
		return *(*uint64)(unsafe.Add(p.hot, off-p.hotLo))
	}
	return p.slow64(off)
}

// put64 writes v at off, to the hot page when it holds the value.
func (p *Memory) put64(off int, v uint64) {
	if off >= p.hotLo && off <= p.hotHi-8 {
		*(*uint64)(unsafe.Add(p.hot, off-p.hotLo)) = v
		return
	}
	p.putSlow64(off, v)
}

// add64 appends v, to the cached append page when it has room.
func (p *Memory) add64(v uint64) error {
	if p.len <= p.appHi-8 {
		*(*uint64)(unsafe.Add(p.app, p.len-p.appLo)) = v
		p.len += 8
		return nil
	}
	return paddSlow(p, v)
}

// slow64 reads the uint64 at off outside the hot page.
func (p *Memory) slow64(off int) uint64 { return pgetSlow[uint64](p, off) }

// putSlow64 writes v at off outside the hot page.
func (p *Memory) putSlow64(off int, v uint64) { pputSlow(p, off, v) }
