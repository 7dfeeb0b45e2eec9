// The free-block tag: 16 bytes written over the start of every free block of
// a pool in use, so that a double free is recognised without the lock.

package arena

import "encoding/binary"

// tagWords returns the tag of the block at off: its offset mixed with the
// allocator's random key, so live data matches it only by a 2^-128 chance
// (or by someone who read the key from this process's memory).
func (a *Allocator) tagWords(off uintptr) (uint64, uint64) {
	return uint64(off) ^ a.key[0], (uint64(off)*0x9E3779B97F4A7C15 + 1) ^ a.key[1]
}

// tag writes the free-block tag over the start of b, the block at off.
func (a *Allocator) tag(b []byte, off uintptr) {
	t0, t1 := a.tagWords(off)
	binary.NativeEndian.PutUint64(b[0:8], t0)
	binary.NativeEndian.PutUint64(b[8:16], t1)
}

// tagged reports whether the block at off carries the free-block tag.
func (a *Allocator) tagged(off uintptr) bool {
	b := a.block(off, minBlock)
	t0, t1 := a.tagWords(off)
	return binary.NativeEndian.Uint64(b[0:8]) == t0 && binary.NativeEndian.Uint64(b[8:16]) == t1
}
