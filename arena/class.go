// Size classes: the block sizes the arena serves from pages, and the constant
// arithmetic that maps a request to its class and an offset to its block.

package arena

// Class sizes: 16-byte steps up to 512 bytes, then a few larger classes whose
// sizes are multiples of 64 (so blocks of 64-byte multiples are 64-byte
// aligned). Requests above MaxSmall are spans of whole pages (large.go).
const (
	smallMax = 512        // the last class of the 16-byte steps
	MaxSmall = 2048       // largest request served from a page; larger ones are spans of whole pages
	nClasses = 1 + 32 + 4 // class 0 means "no class" (a page not in use)

	// classSlots sizes the per-class tables: a power of two, so a class
	// masked with classSlots-1 indexes them with no bounds check.
	classSlots = 64
)

// classSize is the block size of each class; classSize[0] is unused.
var classSize = [classSlots]int{0,
	16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	272, 288, 304, 320, 336, 352, 368, 384, 400, 416, 432, 448, 464, 480, 496, 512,
	640, 768, 1024, 2048,
}

// divMul[c] turns a division by classSize[c] into a multiply and a shift, as
// the Go runtime does for span offsets: (off*divMul)>>32 == off/size for every
// offset inside a page (checked exhaustively by a test).
var divMul [classSlots]uint32

// modMul[c] tells a multiple of classSize[c] with one multiply (Lemire, Kaser
// and Kurz, "Faster remainder by direct computation", 2019): for any 32-bit
// x, x%size == 0 exactly when x*modMul (mod 2^64) < modMul.
var modMul [classSlots]uint64

// classTab[i] is the smallest class of at least 16*i bytes (class 1 for 0),
// for 16*i <= MaxSmall; its length is a power of two, so a masked index
// needs no bounds check.
var classTab [256]uint8

func init() {
	for c := 1; c < nClasses; c++ {
		divMul[c] = ^uint32(0)/uint32(classSize[c]) + 1
		modMul[c] = ^uint64(0)/uint64(classSize[c]) + 1
	}
	c := 1
	for i := range MaxSmall>>4 + 1 {
		for classSize[c] < i<<4 {
			c++
		}
		classTab[i] = uint8(c)
	}
}

// isBlockStart reports whether page offset in is where a block of class c
// starts, if any block of that class starts in its state granule (no other
// multiple of the size can lie there: sizes are at least the granule).
func isBlockStart(in uintptr, c int) bool {
	m := modMul[c&(classSlots-1)]
	return uint64(in)*m < m
}

// classOf returns the class serving an n-byte request, 0 <= n <= MaxSmall; a
// request for 0 bytes is served a block of the smallest class. Class sizes
// are multiples of 16, so the class of n is that of n rounded up to 16.
func classOf(n int) int {
	return int(classTab[uint8(uint(n+15)>>4)])
}

// blockIndex returns off/classSize[c] for an offset inside a page.
func blockIndex(off uintptr, c int) uintptr {
	return uintptr((uint64(off) * uint64(divMul[c])) >> 32)
}
