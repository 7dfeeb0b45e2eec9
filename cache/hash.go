// Hashing and comparing keys: short keys, the common case, inline; longer
// ones through hash/maphash and bytes.Equal.

package cache

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"math/bits"
)

// shortKey is the longest key hashed and compared inline.
const shortKey = 16

// Multipliers for mixing (odd 64-bit constants with mixed bits).
const (
	mixA = 0xa0761d6478bd642f
	mixB = 0xe7037ed1a0b428db
)

// hash returns the key's hash, seeded per cache. A key of up to 16 bytes
// is read as two (possibly overlapping) words and mixed by a 128-bit
// multiply, as in wyhash; a longer one goes to maphash. Each operand of the
// multiply has a seed of its own: with an operand unseeded, a key making it
// zero would zero the product whatever the other, and every such key would
// hash alike in every cache; with one seed for both, two keys swapping
// their words would.
func (c *Cache) hash(key []byte) uint64 {
	n := len(key)
	if n > shortKey {
		return maphash.Bytes(c.seed, key)
	}
	var a, b uint64
	switch {
	case n >= 8:
		a, b = binary.LittleEndian.Uint64(key), binary.LittleEndian.Uint64(key[n-8:])
	case n >= 4:
		a, b = uint64(binary.LittleEndian.Uint32(key)), uint64(binary.LittleEndian.Uint32(key[n-4:]))
	case n > 0:
		a = uint64(key[0])<<16 | uint64(key[n>>1])<<8 | uint64(key[n-1])
	}
	return mix(a^mixA^c.hseed[0], b^mixB^uint64(n)^c.hseed[1])
}

// mix folds the 128-bit product of a and b, then once more.
func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	hi, lo = bits.Mul64(hi^mixA, lo^mixB)
	return hi ^ lo
}

// equal reports whether key equals b, a key read from the pool.
func equal(key, b []byte) bool {
	n := len(key)
	if n != len(b) || n > shortKey {
		return bytes.Equal(key, b)
	}
	switch {
	case n >= 8:
		return binary.LittleEndian.Uint64(key) == binary.LittleEndian.Uint64(b) &&
			binary.LittleEndian.Uint64(key[n-8:]) == binary.LittleEndian.Uint64(b[n-8:])
	case n >= 4:
		return binary.LittleEndian.Uint32(key) == binary.LittleEndian.Uint32(b) &&
			binary.LittleEndian.Uint32(key[n-4:]) == binary.LittleEndian.Uint32(b[n-4:])
	}
	for i := range n {
		if key[i] != b[i] {
			return false
		}
	}
	return true
}
