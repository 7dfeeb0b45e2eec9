// The one place mapped turns offsets into pointers: typed loads and stores,
// zero-copy views, and the fast paths of every accessor of Memory.
//
// Why the conversions here are sound:
//   - every pointer is base+off, where base is the start of a live vmem
//     mapping (never Go heap memory, so the collector neither moves nor frees
//     it and ignores the pointer), and [off, off+size) was first checked to lie
//     in the written prefix [0, len), which is always inside the mapped part;
//   - the values are fixed-size numbers with no pointers inside, so unaligned
//     pointers to them are allowed (checkptr demands alignment only of
//     pointerful types) and amd64 and arm64 load and store them natively;
//   - Close zeroes every length and the cached page bounds before unmapping,
//     so a later access fails the bounds check instead of touching unmapped
//     memory. Views handed out earlier are documented as valid until Close.
//
// The fixed-size accessors are written out per width rather than generic:
// the compiler inlines them into their callers, where a shared generic body
// (one per GC shape, with a dictionary) would be a call. Their failure
// branches panic directly, which the inliner counts as cheap.

package mapped

import (
	"math"
	"unsafe"

	"github.com/offheap/offheap/vmem"
)

// Number is the set of fixed-size numeric types Memory stores directly: a
// value of such a type is its own bytes, in the machine's byte order, with no
// pointers inside.
type Number interface {
	~int8 | ~int16 | ~int32 | ~int64 |
		~uint8 | ~uint16 | ~uint32 | ~uint64 |
		~float32 | ~float64 | ~complex64 | ~complex128
}

// pointer is the address type of mapped memory; only this file converts it.
type pointer = unsafe.Pointer

// regionBase returns the fixed base address of a region with ready bytes
// (vmem.Region.Base), or nil for a region with none yet.
func regionBase(r *vmem.Region) pointer {
	if r.Len() == 0 {
		return nil
	}
	return r.Base()
}

// sizeOf is the size of T in bytes.
func sizeOf[T Number]() int {
	var z T
	return int(unsafe.Sizeof(z))
}

// Append appends v to m in the machine's byte order: AppendInt32 and friends
// for any Number type, including named ones. On error nothing changes.
func Append[T Number](m *Memory, v T) error {
	n := sizeOf[T]()
	if m.len > m.avail-n {
		if err := m.grow(n); err != nil {
			return err
		}
	}
	*(*T)(unsafe.Add(m.base, m.len)) = v
	m.len += n
	return nil
}

// Slice returns a zero-copy view of n values of type T starting at byte off of
// m's written prefix. It panics with a RangeError, as slicing does, when the
// range is not inside the prefix or n is negative. The view stays valid, at
// the same address, until Close; growth does not move it. It may be written
// through only when m is writable.
func Slice[T Number](m *Memory, off, n int) []T {
	sz := sizeOf[T]()
	if n < 0 || n > math.MaxInt/sz || off < 0 || off > m.len-n*sz {
		panic(RangeError{"view", off, n * sz, m.len})
	}
	if n == 0 {
		return []T{}
	}
	return unsafe.Slice((*T)(unsafe.Add(m.base, off)), n)
}

// at returns p+n.
func at(p pointer, n int) pointer { return unsafe.Add(p, n) }

// bytesAt returns n bytes at p as a slice whose capacity is n.
func bytesAt(p pointer, n int) []byte { return unsafe.Slice((*byte)(p), n) }

// Bytes returns a zero-copy view of the n written bytes at off, valid until
// Close. Its capacity is n, so appending to it never overwrites neighbours.
func (m *Memory) Bytes(off, n int) []byte {
	if n < 0 || off < 0 || off > m.len-n {
		panic(RangeError{"read", off, n, m.len})
	}
	return bytesAt(unsafe.Add(m.base, off), n)
}

// PutBytes copies b to off.
func (m *Memory) PutBytes(off int, b []byte) {
	if off < 0 || off > m.len-m.wshort-len(b) {
		panic(RangeError{"write", off, len(b), m.wlen()})
	}
	copy(bytesAt(unsafe.Add(m.base, off), len(b)), b)
}

// AppendBytes appends the bytes of b, without a length.
func (m *Memory) AppendBytes(b []byte) error {
	if m.len > m.avail-len(b) {
		if err := m.grow(len(b)); err != nil {
			return err
		}
	}
	copy(bytesAt(unsafe.Add(m.base, m.len), len(b)), b)
	m.len += len(b)
	return nil
}

// Str returns the string at off and true, or "" and false for a null string.
// The string shares the memory (zero-copy) and is valid until Close; a later
// put over its bytes changes it, so treat it as a view, not a value.
func (m *Memory) Str(off int) (string, bool) {
	n := int(int32(m.u32(off)))
	if n < 0 {
		return "", false
	}
	if off > m.len-4-n {
		panic(RangeError{"read", off + 4, n, m.len})
	}
	return unsafe.String((*byte)(unsafe.Add(m.base, off+4)), n), true
}

// Bin returns a zero-copy view of the binary value at off, nil for null and
// empty but not nil for a value of length 0. It is valid until Close.
func (m *Memory) Bin(off int) []byte {
	n := int(int32(m.u32(off)))
	if n < 0 {
		return nil
	}
	if off > m.len-4-n {
		panic(RangeError{"read", off + 4, n, m.len})
	}
	return bytesAt(unsafe.Add(m.base, off+4), n)
}

// AppendStr appends s as an int32 length and its bytes.
func (m *Memory) AppendStr(s string) error {
	if len(s) <= math.MaxInt32 && m.len <= m.avail-4-len(s) {
		p := unsafe.Add(m.base, m.len)
		*(*int32)(p) = int32(len(s))
		copy(bytesAt(unsafe.Add(p, 4), len(s)), s)
		m.len += 4 + len(s)
		return nil
	}
	return appendSizedSlow(m, s)
}

// AppendBin appends b as an int32 length and its bytes; a nil b is null.
func (m *Memory) AppendBin(b []byte) error {
	if b == nil {
		return m.AppendNull()
	}
	if len(b) <= math.MaxInt32 && m.len <= m.avail-4-len(b) {
		p := unsafe.Add(m.base, m.len)
		*(*int32)(p) = int32(len(b))
		copy(bytesAt(unsafe.Add(p, 4), len(b)), b)
		m.len += 4 + len(b)
		return nil
	}
	return appendSizedSlow(m, b)
}

// putSized writes an int32 length and the bytes of s at off.
func putSized[S ~string | ~[]byte](m *Memory, off int, s S) {
	if len(s) > math.MaxInt32 || off < 0 || off > m.len-m.wshort-4-len(s) {
		panic(RangeError{"write", off, 4 + len(s), m.wlen()})
	}
	p := unsafe.Add(m.base, off)
	*(*int32)(p) = int32(len(s))
	copy(bytesAt(unsafe.Add(p, 4), len(s)), s)
}

// clearRange zeroes [off, off+n) of m, or poisons it in the checked build when
// poison is set; the caller has checked the range is mapped.
func (m *Memory) clearRange(off, n int, poison bool) {
	b := bytesAt(unsafe.Add(m.base, off), n)
	if poison {
		fillPoison(b)
		return
	}
	clear(b)
}

// u8 reads the uint8 at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside.
func (m *Memory) u8(off int) uint8 {
	if off < 0 || off > m.len-1 {
		panic(RangeError{"read", off, 1, m.len})
	}
	return *(*uint8)(unsafe.Add(m.base, off))
}

// put8 writes v at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside or the memory is read-only.
func (m *Memory) put8(off int, v uint8) {
	if off < 0 || off > m.len-m.wshort-1 {
		panic(RangeError{"write", off, 1, m.wlen()})
	}
	*(*uint8)(unsafe.Add(m.base, off)) = v
}

// add8 appends v, growing the memory first when it is full.
func (m *Memory) add8(v uint8) error {
	if m.len > m.avail-1 {
		return addSlow(m, v)
	}
	*(*uint8)(unsafe.Add(m.base, m.len)) = v
	m.len += 1
	return nil
}

// u16 reads the uint16 at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside.
func (m *Memory) u16(off int) uint16 {
	if off < 0 || off > m.len-2 {
		panic(RangeError{"read", off, 2, m.len})
	}
	return *(*uint16)(unsafe.Add(m.base, off))
}

// put16 writes v at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside or the memory is read-only.
func (m *Memory) put16(off int, v uint16) {
	if off < 0 || off > m.len-m.wshort-2 {
		panic(RangeError{"write", off, 2, m.wlen()})
	}
	*(*uint16)(unsafe.Add(m.base, off)) = v
}

// add16 appends v, growing the memory first when it is full.
func (m *Memory) add16(v uint16) error {
	if m.len > m.avail-2 {
		return addSlow(m, v)
	}
	*(*uint16)(unsafe.Add(m.base, m.len)) = v
	m.len += 2
	return nil
}

// u32 reads the uint32 at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside.
func (m *Memory) u32(off int) uint32 {
	if off < 0 || off > m.len-4 {
		panic(RangeError{"read", off, 4, m.len})
	}
	return *(*uint32)(unsafe.Add(m.base, off))
}

// put32 writes v at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside or the memory is read-only.
func (m *Memory) put32(off int, v uint32) {
	if off < 0 || off > m.len-m.wshort-4 {
		panic(RangeError{"write", off, 4, m.wlen()})
	}
	*(*uint32)(unsafe.Add(m.base, off)) = v
}

// add32 appends v, growing the memory first when it is full.
func (m *Memory) add32(v uint32) error {
	if m.len > m.avail-4 {
		return addSlow(m, v)
	}
	*(*uint32)(unsafe.Add(m.base, m.len)) = v
	m.len += 4
	return nil
}

// u64 reads the uint64 at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside.
func (m *Memory) u64(off int) uint64 {
	if off < 0 || off > m.len-8 {
		panic(RangeError{"read", off, 8, m.len})
	}
	return *(*uint64)(unsafe.Add(m.base, off))
}

// put64 writes v at off of the written prefix, panicking like a slice index
// when it does not lie wholly inside or the memory is read-only.
func (m *Memory) put64(off int, v uint64) {
	if off < 0 || off > m.len-m.wshort-8 {
		panic(RangeError{"write", off, 8, m.wlen()})
	}
	*(*uint64)(unsafe.Add(m.base, off)) = v
}

// add64 appends v, growing the memory first when it is full.
func (m *Memory) add64(v uint64) error {
	if m.len > m.avail-8 {
		return addSlow(m, v)
	}
	*(*uint64)(unsafe.Add(m.base, m.len)) = v
	m.len += 8
	return nil
}
