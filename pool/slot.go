// The slot table: one plain struct per segment or hole, and the state word
// that lock-free readers validate and latchers CAS.

package pool

import "sync/atomic"

// slot describes one segment, one hole, or nothing (a free slot).
//
// word is read and CASed without the lock (Latch, Unlatch, Read); every other
// field is written only under the lock and read without it only by lock-free
// readers, which discard what they read if the word's generation, the moves
// counter (Read) or seq (Latch) changed meanwhile.
type slot struct {
	word uint64 // generation | state | flags | latches; see the word* constants
	off  uint64 // segment or hole: offset of its first byte
	n    uint64 // segment: length as committed; hole: size in bytes
	// prev and next link extents (segments holding space, and holes) in
	// address order; none at the ends.
	prev, next uint32
	// link is the next hole in the same TLSF list, or the next free slot;
	// blink is the previous hole in the TLSF list.
	link, blink uint32
}

const slotSize = 40 // unsafe.Sizeof(slot{}), checked by the compiler in unsafe.go

const none = ^uint32(0)

// The state word: bits 0-31 the generation, 32-33 the state, 34 released,
// 35 unpublished, 36-63 the latch count.
const (
	genMask     = 1<<32 - 1
	stateShift  = 32
	stateMask   = 3 << stateShift
	stateFree   = 0 // on the free-slot stack
	stateUsed   = 1 // a segment
	stateHole   = 2 // a hole
	usedBits    = stateUsed << stateShift
	holeBits    = stateHole << stateShift
	flagRelease = 1 << 34 // released while latched: freed at the last Unlatch
	flagUnpub   = 1 << 35 // reserved and not yet published by its first Unlatch
	latchShift  = 36
	latchOne    = 1 << latchShift
	maxLatches  = 1<<(64-latchShift) - 1

	// A Ref names a readable segment when its word, under readMask, is its
	// generation with stateUsed; refMask admits unpublished segments too
	// (Release, Info); unlatchMask admits released ones with latches.
	readMask    = genMask | stateMask | flagRelease | flagUnpub
	refMask     = genMask | stateMask | flagRelease
	unlatchMask = genMask | stateMask
)

func stateOf(w uint64) uint64   { return (w & stateMask) >> stateShift }
func latchesOf(w uint64) uint64 { return w >> latchShift }
func genOf(w uint64) uint32     { return uint32(w) }

// nextGen returns the word of a slot whose occupant is gone: the next
// generation, in state st, with no flags or latches.
func nextGen(w uint64, st uint64) uint64 { return uint64(genOf(w)+1) | st<<stateShift }

func (s *slot) loadWord() uint64             { return atomic.LoadUint64(&s.word) }
func (s *slot) casWord(old, new uint64) bool { return atomic.CompareAndSwapUint64(&s.word, old, new) }

// size returns the bytes a segment of length n occupies.
func (p *Pool) size(n uint64) uint64 { return (n + p.alignMask) &^ p.alignMask }

// extentSize returns the bytes slot i covers: its rounded length, or its size if a hole.
func (p *Pool) extentSize(i uint32) uint64 {
	s := p.slot(i)
	if stateOf(s.word) == stateHole {
		return s.n
	}
	return p.size(s.n)
}

// isHole reports whether extent i is a hole. Callers hold the lock.
func (p *Pool) isHole(i uint32) bool { return i != none && stateOf(p.slot(i).word) == stateHole }

// newSlot pops a free slot or takes a fresh one, growing the table if needed.
// Its word holds the generation the next occupant gets. Callers hold the lock.
func (p *Pool) newSlot() (uint32, bool) {
	if i, ok := p.popSlot(); ok || !p.growSlots() {
		return i, ok
	}
	return p.popSlot()
}

// popSlot is newSlot without growth: small enough to inline.
func (p *Pool) popSlot() (uint32, bool) {
	if i := p.freeSlot; i != none {
		p.freeSlot = p.slot(i).link
		return i, true
	}
	if i := p.nslots; uint64(i) < atomic.LoadUint64(&p.slotsReady) {
		p.nslots++
		p.slot(i).word = uint64(p.firstGen) // fresh: its first generation
		return i, true
	}
	return 0, false
}

// freeSlotAt pushes slot i onto the free stack with its generation bumped. Callers hold the lock.
func (p *Pool) freeSlotAt(i uint32) { p.pushFree(i, p.slot(i)) }

// pushFree is freeSlotAt for a caller that has slot i at hand as s.
//
// A slot's generations run from the pool's first through 2^32-1 more; the
// last, firstGen-1, marks a retired slot, which is never reused, so no Ref
// can ever name a later segment in the same slot, however long a stale Ref
// is kept (LIFO reuse would otherwise wrap a busy slot's generation in
// minutes). A slot retires when it is freed at the last generation before
// that one, or at that one (a hole; see placeInHole). One slot is lost per
// 2^32 reuses.
func (p *Pool) pushFree(i uint32, s *slot) {
	if genOf(s.word)-p.firstGen >= genMask-1 {
		p.retire(s)
		return
	}
	s.word = nextGen(s.word, stateFree)
	s.link, p.freeSlot = p.freeSlot, i
}

// retire takes slot s out of use for good.
func (p *Pool) retire(s *slot) {
	s.word = uint64(p.retiredGen()) | stateFree<<stateShift
	p.retired++
}

// retiredGen is the generation that marks a retired slot; no segment has it.
func (p *Pool) retiredGen() uint32 { return p.firstGen - 1 }

// growSlots makes more of the slot table ready: double, at least 64 KiB. Callers hold the lock.
func (p *Pool) growSlots() bool {
	have := p.meta.Len()
	want := min(max(2*have, have+64<<10), p.meta.Cap())
	if want <= have || p.meta.Grow(want) != nil {
		return false
	}
	atomic.StoreUint64(&p.slotsReady, uint64(min((p.meta.Len()-countersSize)/slotSize, len(p.slots))))
	return true
}
