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
// belongs to no block (past the last block of its page, or a page not in
// use).
const (
	stFree   = 1 // free in its page
	stCached = 2 // held by a Cache (a user's or a P's); counts as allocated in its page
	stUser   = 3 // allocated to a user
	stMask   = 3
	stShift  = 2
)

// stateByte is the state byte of a block of class c in state st.
func stateByte(c int, st uint8) uint8 { return uint8(c)<<stShift | st }

// State bytes live in the arena's metadata, per page: 64 for pages of
// classes of 64 bytes or more (which hold at most 64 blocks), 256 for the
// classes below (up to 256 blocks), in two arrays so that the common classes
// use a quarter of the memory.
const (
	smallStateClasses = 4 // classes 1-3 (16-48 bytes) use the 256-byte states
	bigStates         = 64
	smallStates       = 256
)

// states returns the state bytes of the page holding page offset off, of
// class c.
func (a *Allocator) states(off uintptr, c int) []uint8 {
	m := a.meta(int(off >> arenaShift))
	pi := int(off>>pageShift) & (pagesPerArena - 1)
	if c < smallStateClasses {
		return m.smallState[pi*smallStates : (pi+1)*smallStates : (pi+1)*smallStates]
	}
	return m.bigState[pi*bigStates : (pi+1)*bigStates : (pi+1)*bigStates]
}

// stateOf returns the state byte of the block of class c with index idx in
// the page holding page offset off.
func (a *Allocator) stateOf(off uintptr, c int, idx uintptr) *uint8 {
	m := a.meta(int(off >> arenaShift))
	pi := uintptr(off>>pageShift) & (pagesPerArena - 1)
	if c < smallStateClasses {
		return &m.smallState[(pi*smallStates+idx)&(pagesPerArena*smallStates-1)]
	}
	return &m.bigState[(pi*bigStates+idx)&(pagesPerArena*bigStates-1)]
}

// claim changes the state byte at p from class c's state from to state to,
// atomically, and reports whether it did: false if the byte held anything
// else. Neighbouring state bytes may change meanwhile (plainly, or by
// another claim): the compare-and-swap covers the word holding p and is
// retried while p's own byte holds what is expected.
func claim(p *uint8, c int, from, to uint8) bool {
	w, sh := stateWord(p)
	want, next := uint32(stateByte(c, from)), uint32(stateByte(c, to))
	for {
		old := atomic.LoadUint32(w)
		if old>>sh&0xFF != want {
			return false
		}
		if atomic.CompareAndSwapUint32(w, old, old&^(0xFF<<sh)|next<<sh) {
			return true
		}
	}
}

// setState stores a state byte. Callers own the block's state: they hold
// the allocator's lock (a block in its page), or the block is in their
// cache; see stateWord for why a plain store is safe beside a claim of a
// neighbour.
func setState(p *uint8, c int, st uint8) { *p = stateByte(c, st) }

// findFree puts in dst the indexes of up to len(dst) blocks of class c in
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
