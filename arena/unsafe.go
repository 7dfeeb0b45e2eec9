// The one place arena turns slices into addresses and addresses into slices.

package arena

import (
	"encoding/binary"
	"unsafe"

	"github.com/offheap/offheap/vmem"
)

// offsetOf returns b's start as an offset from the reservation, and whether
// that lies inside the carved arenas (where pages are). Only arithmetic is
// done on the address: a slice of any origin is safe to pass.
func (a *Allocator) offsetOf(b []byte) (uintptr, bool) {
	off := a.offset(b)
	return off, off < a.carvedEnd()
}

// offset returns b's start as an offset from the arenas' reservation (a huge
// one if b starts below it). Only arithmetic is done on the address.
func (a *bases) offset(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(a.base)
}

// bases are where an allocator's arenas and their metadata (metaStride
// bytes per arena) start, fixed from New until Close: all it takes to find a
// block of the arenas and its state byte. A Cache keeps a copy.
type bases struct {
	base, metaBase unsafe.Pointer
}

// addrOf returns the address of b's first byte (nil for a nil slice).
func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// block returns n bytes at offset off of the reservation.
//
// Sound because callers pass only offsets inside carved arenas, whose pages
// stay mapped (ready, or released and readable as zero; in the checked build
// callers never touch released pages) until Close, and Close happens only
// when no block is allocated. The memory is outside the Go heap, so the
// collector neither moves nor frees it.
func (a *bases) block(off uintptr, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(a.base, off)), n)
}

// metaSize is the size of an arena's metadata.
const metaSize = int(unsafe.Sizeof(arenaMeta{}))

// meta returns the metadata of arena ai, in the metadata region.
//
// Sound because the metadata region is page aligned, holds metaStride bytes
// per carved arena (ai is always a carved arena) and lives outside the Go
// heap until Close; arenaMeta holds no pointers, so the collector need not
// see it, and its alignment (8) divides metaStride.
func (a *bases) meta(ai int) *arenaMeta {
	return (*arenaMeta)(unsafe.Add(a.metaBase, ai*metaStride))
}

// addr returns the address of offset off of the reservation, for errors.
func (a *bases) addr(off uintptr) uintptr { return uintptr(a.base) + off }

// spanEntrySize is the size of a large page's metadata entry.
const spanEntrySize = int(unsafe.Sizeof(spanEntry{}))

// entriesOf returns the metadata region r as n span entries.
//
// Sound because r reserves n*spanEntrySize bytes at a page-aligned base
// that stays fixed (and outside the Go heap) until its Close, which comes
// after the last use; spanEntry holds no pointers and its alignment (4)
// divides the page size. Only entries in r's ready prefix are touched (see
// spanSet.ready).
func entriesOf(r *vmem.Region, n uint32) []spanEntry {
	return unsafe.Slice((*spanEntry)(r.Base()), n)
}

// wordsOf returns the region r as the words of a bitmap of n bits, on the
// same grounds as entriesOf.
func wordsOf(r *vmem.Region, n uint32) []uint64 {
	return unsafe.Slice((*uint64)(r.Base()), (n+63)/64)
}

// block returns n bytes from page p of the large reservation.
//
// Sound because p and n lie inside a span that is allocated (so ready and
// not released) until the block is freed, and the reservation is unmapped
// only by Close, after every block was freed, or when the Allocator is
// unreachable.
func (ls *largeSpace) block(p uint32, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Add(ls.base, uintptr(p)<<ls.shift)), n)
}

// offsetOf returns b's start as an offset from the large reservation (a
// huge one if b starts below it). Only arithmetic is done on the address.
func (ls *largeSpace) offsetOf(b []byte) uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(ls.base)
}

// stateWord returns the aligned 32-bit word holding the state byte at p,
// and the shift of that byte within the word's value.
//
// Sound because state bytes lie in arrays of arenaMeta whose offsets and
// lengths are multiples of 4 (asserted below), in memory outside the Go heap,
// so the word is inside the same array, and the collector never looks at it.
// Mixing a plain store of one byte (setState) with a compare-and-swap of the
// word holding it is safe on every architecture Go supports: byte stores are
// single-copy atomic and never rewrite their neighbours, and a
// compare-and-swap that raced a store to any byte of its word fails, so it
// never writes back a stale value over it. (The Go memory model calls such
// mixed-size accesses a race; the race detector's build therefore makes every
// state change under the allocator's lock, see pcache.go.)
func stateWord(p *uint8) (*uint32, uint) {
	in := uintptr(unsafe.Pointer(p)) & 3
	return (*uint32)(unsafe.Add(unsafe.Pointer(p), -int(in))), uint(in^endianFlip) * 8 & 31
}

// endianFlip maps a byte's offset in a word to its place in the word's
// value: 0 on little-endian machines, 3 on big-endian ones.
var endianFlip = func() uintptr {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return 0
	}
	return 3
}()

// The state arrays are whole, aligned words (see stateWord).
const (
	_ = -(unsafe.Offsetof(arenaMeta{}.bigState) % 4)
	_ = -(unsafe.Offsetof(arenaMeta{}.smallState) % 4)
	_ = -(unsafe.Sizeof(arenaMeta{}.bigState) % 4)
	_ = -(unsafe.Sizeof(arenaMeta{}.smallState) % 4)
)

// stateIn returns the state byte of the block of class c starting at offset
// off of the arena whose metadata is m.
//
// Sound because stateBase[c] is the offset of an array of arenaMeta with one
// byte per 1<<stateGran[c] bytes of an arena, so the byte lies inside it
// for any offset.
func stateIn(m *arenaMeta, off uintptr, c int) *uint8 {
	c &= classSlots - 1
	return (*uint8)(unsafe.Add(unsafe.Pointer(m), stateBase[c]+(off&(ArenaSize-1))>>(stateGran[c]&63)))
}

func init() {
	for c := range classSlots {
		stateBase[c], stateGran[c] = unsafe.Offsetof(arenaMeta{}.bigState), bigGran
		if c < smallStateClasses {
			stateBase[c], stateGran[c] = unsafe.Offsetof(arenaMeta{}.smallState), smallGran
		}
	}
}
