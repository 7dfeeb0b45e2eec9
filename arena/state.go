// Block states: one byte per block, outside the block, that says whether it
// is allocated to a user, held by a cache or free in its page. Free changes
// it from "user" with a compare-and-swap, so a free of a block that is not
// allocated to a user is always seen, and of two frees of one block racing
// each other exactly one succeeds.

package arena

import (
	"encoding/binary"
	"sync/atomic"
)

// Block states, in the low bits of a block's state byte; the class of the
// block's page is in the bits above, so that a compare-and-swap made with a
// class read before the page changed class fails. A state byte that is 0
// belongs to no block: no block starts in its granule, or its page is not
// in use.
const (
	stFree   = 1 // free in its page
	stCached = 2 // held by a Cache (a user's or a P's); counts as allocated in its page
	stUser   = 3 // allocated to a user
	stMask   = 3
	stShift  = 2
)

// stateByte is the state byte of a block of class c in state st.
func stateByte(c int, st uint8) uint8 { return uint8(c)<<stShift | st }

// State bytes live in the arena's metadata, one per granule of the arena:
// per 64 bytes for pages of classes of 64 bytes and more (no two of their
// blocks start in one such granule), per 16 bytes for the smaller classes;
// so a block's state byte is found from its offset with a shift, and the
// common classes use a quarter of the memory. They are in two arrays of
// arenaMeta, bigState and smallState.
const (
	smallStateClasses  = 4                     // classes 1-3 (16-48 bytes) use smallState
	bigGran, smallGran = 6, 4                  // log2 of the granule of each array
	bigStates          = pageSize >> bigGran   // state bytes per page in bigState
	smallStates        = pageSize >> smallGran // and in smallState
)

// stateBase and stateGran are, per class, the offset in arenaMeta of its
// state array and the log2 of its granule (set in unsafe.go).
var (
	stateBase [classSlots]uintptr
	stateGran [classSlots]uint
)

// states returns the state bytes of the page holding page offset off, of
// class c: the byte of granule j stands for the block starting in it, if any
// (see blockIn).
func (a *Allocator) states(off uintptr, c int) []uint8 {
	m := a.meta(int(off >> arenaShift))
	pi := int(off>>pageShift) & (pagesPerArena - 1)
	if c < smallStateClasses {
		return m.smallState[pi*smallStates : (pi+1)*smallStates : (pi+1)*smallStates]
	}
	return m.bigState[pi*bigStates : (pi+1)*bigStates : (pi+1)*bigStates]
}

// blockIn returns the page offset of the block of class c that starts in
// granule j of its page's states, and whether one does.
func blockIn(j, c int) (uintptr, bool) {
	size := classSize[c]
	start := ((j << stateGran[c]) + size - 1) / size * size
	return uintptr(start), start < int(endOff[c]) && start>>stateGran[c] == j
}

// stateAt returns the state byte of the block of class c starting at page
// offset off.
func (a *bases) stateAt(off uintptr, c int) *uint8 {
	return stateIn(a.meta(int(off>>arenaShift)), off, c)
}

// handOut gives a block of class c, held by the caller's cache (state
// stCached), to the user: it marks it stUser, clears it and returns its first
// n bytes. Callers own the block (see setState), in the builds with per-P
// caches; the others use Allocator.serve.
func (a *bases) handOut(off uintptr, c, n int) []byte {
	setState(a.stateAt(off, c), c, stUser)
	b := a.block(off, n)
	clear(b)
	return b
}

// claim moves the state byte at p of a block of class c from stUser to
// stCached, atomically, and reports whether it did: false if the byte held
// anything else. Neighbouring state bytes may change meanwhile (plainly, or
// by another claim): the compare-and-swap covers the word holding p and is
// retried while p's own byte holds what is expected.
func claim(p *uint8, c int) bool {
	w, sh := stateWord(p)
	user := uint32(stateByte(c, stUser)) << sh
	for {
		old := atomic.LoadUint32(w)
		if old&(0xFF<<sh) != user {
			return false
		}
		if atomic.CompareAndSwapUint32(w, old, old^(stUser^stCached)<<sh) {
			return true
		}
	}
}

// setState stores a state byte. Callers own the block's state: they hold
// the allocator's lock (a block in its page), or the block is in their
// cache; see stateWord for why a plain store is safe beside a claim of a
// neighbour.
func setState(p *uint8, c int, st uint8) { *p = stateByte(c, st) }

// findFree puts in dst the granules of up to len(dst) blocks of class c in
// state stFree among states, in order, and returns how many it found. It
// skips 8 states at a time where none is free.
func findFree(states []uint8, c int, dst []uintptr) int {
	free := stateByte(c, stFree)
	pattern := uint64(free) * 0x0101010101010101
	n := 0
	for i := 0; i+8 <= len(states) && n < len(dst); i += 8 {
		v := binary.LittleEndian.Uint64(states[i:]) ^ pattern // a byte of 0 where the state is stFree
		if (v-0x0101010101010101)&^v&0x8080808080808080 == 0 {
			continue // no zero byte
		}
		for j := i; j < i+8 && n < len(dst); j++ {
			if states[j] == free {
				dst[n] = uintptr(j)
				n++
			}
		}
	}
	return n
}
