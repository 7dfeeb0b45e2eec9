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

func init() {
	for c := 1; c < nClasses; c++ {
		divMul[c] = ^uint32(0)/uint32(classSize[c]) + 1
	}
}

// classOf returns the class serving an n-byte request, 0 < n <= MaxSmall; a
// request for 0 bytes is served a block of the smallest class.
func classOf(n int) int {
	if n <= smallMax {
		return max(n+15, 16) >> 4
	}
	switch {
	case n <= 640:
		return 33
	case n <= 768:
		return 34
	case n <= 1024:
		return 35
	}
	return 36
}

// blockIndex returns off/classSize[c] for an offset inside a page.
func blockIndex(off uintptr, c int) uintptr {
	return uintptr((uint64(off) * uint64(divMul[c])) >> 32)
}
