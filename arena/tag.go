// The free-block tag: 8 bytes written over the start of every free block of
// a page in use, so that a double free is recognised without the lock.

package arena

import "encoding/binary"

// tagWord returns the tag of the block at off: its offset mixed with the
// allocator's random key, so live data matches it only by a 2^-64 chance (or
// by someone who read the key from this process's memory).
func (a *Allocator) tagWord(off uintptr) uint64 {
	return (uint64(off)*0x9E3779B97F4A7C15 + 1) ^ a.key
}

// tag writes the free-block tag over the start of b, the block at off.
func (a *Allocator) tag(b []byte, off uintptr) {
	binary.NativeEndian.PutUint64(b[0:8], a.tagWord(off))
}

// tagged reports whether the block at off carries the free-block tag.
func (a *Allocator) tagged(off uintptr) bool {
	return binary.NativeEndian.Uint64(a.block(off, 8)) == a.tagWord(off)
}
