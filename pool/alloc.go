// Space: placing segments (a hole that fits, else bump top), freeing them
// with coalescing, compaction and growth. Every function here runs under the lock.

package pool

import (
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
)

// place finds size bytes (size > 0, a multiple of the alignment) for a new
// segment and returns its slot, with off and the extent links set, its word
// still holding the next generation; ok is false if there is no hole that
// fits and no room at top (or no slot). It neither compacts nor grows.
func (p *Pool) place(size uint64) (i uint32, ok bool) {
	if p.free.flMap != 0 {
		if h := p.holeFind(size >> p.alignLog); h != none {
			return p.placeInHole(h, size)
		}
	}
	if p.capacity-p.top < size {
		return 0, false
	}
	if i, ok = p.newSlot(); ok {
		p.linkLast(i, size)
	}
	return i, ok
}

// linkLast puts extent i, of size bytes, at top and advances top.
func (p *Pool) linkLast(i uint32, size uint64) {
	s := p.slot(i)
	s.off, s.prev, s.next = p.top, p.last, none
	if p.last != none {
		p.slot(p.last).next = i
	} else {
		p.first = i
	}
	p.last = i
	p.top += size
}

// placeInHole puts a segment of size bytes at the start of hole h. An exact
// fit turns the hole's own slot into the segment (unless the slot is at the
// retired generation: see fillHole); otherwise a new slot is linked before
// the hole, which shrinks.
func (p *Pool) placeInHole(h uint32, size uint64) (uint32, bool) {
	hs := p.slot(h)
	p.holeRemove(h, hs.n>>p.alignLog)
	if hs.n == size && genOf(hs.word) != p.retiredGen() {
		p.holes--
		p.holeBytes -= size
		return h, true
	}
	i, ok := p.newSlot()
	if !ok {
		p.holeInsert(h, hs.n>>p.alignLog)
		return 0, false
	}
	s := p.slot(i)
	s.off, s.prev, s.next = hs.off, hs.prev, h
	if hs.prev != none {
		p.slot(hs.prev).next = i
	} else {
		p.first = i
	}
	if hs.n == size {
		p.fillHole(i, h, hs)
		return i, true
	}
	hs.prev = i
	hs.off += size
	hs.n -= size
	p.holeBytes -= size
	p.holeInsert(h, hs.n>>p.alignLog)
	return i, true
}

// fillHole ends hole h, whose slot hs is at the retired generation (a
// segment released at its slot's last usable generation leaves such a hole),
// once segment i, linked before it, has taken all its space: the hole's slot
// retires instead of becoming the segment, whose Refs would otherwise carry
// the retired generation and, once released, wrap it.
func (p *Pool) fillHole(i, h uint32, hs *slot) {
	p.slot(i).next = hs.next
	p.slot(hs.next).prev = i // a hole is never the last extent
	p.holes--
	p.holeBytes -= hs.n
	p.retire(hs)
}

// freeExtent returns the space of segment i, of size bytes: the extent
// merges with a hole on either side, and if it is the last extent, top
// retreats over it (and over a hole before it). The slot ends up free or as
// a hole, either way with its generation bumped, so its Refs are dead.
func (p *Pool) freeExtent(i uint32, size uint64) {
	s := p.slot(i)
	if check.On {
		check.Fill(p.view(s.off, size))
	}
	if s.next == none {
		p.dropLast(i, s)
		if p.isHole(p.last) {
			h := p.last
			p.holeRemove(h, p.slot(h).n>>p.alignLog)
			p.holes--
			p.holeBytes -= p.slot(h).n
			p.dropLast(h, p.slot(h))
		}
		return
	}
	if nx := s.next; p.isHole(nx) {
		n := p.slot(nx)
		p.holeRemove(nx, n.n>>p.alignLog)
		p.unlink(nx)
		size += n.n
		p.holes--
		p.holeBytes -= n.n
		p.freeSlotAt(nx)
	}
	p.holeBytes += size
	if pv := s.prev; p.isHole(pv) {
		ps := p.slot(pv)
		p.holeRemove(pv, ps.n>>p.alignLog)
		ps.n += size
		p.unlink(i)
		p.freeSlotAt(i)
		p.holeInsert(pv, ps.n>>p.alignLog)
		return
	}
	s.word = nextGen(s.word, stateHole)
	s.n = size
	p.holes++
	p.holeInsert(i, size>>p.alignLog)
}

// dropLast removes the last extent i, whose slot is s: top retreats to its
// start.
func (p *Pool) dropLast(i uint32, s *slot) {
	p.top, p.last = s.off, s.prev
	if s.prev == none {
		p.first = none
	} else {
		p.slot(s.prev).next = none
	}
	p.pushFree(i, s)
}

// unlink takes extent i out of the address-ordered list; it is never the last.
func (p *Pool) unlink(i uint32) {
	s := p.slot(i)
	p.slot(s.next).prev = s.prev
	if s.prev != none {
		p.slot(s.prev).next = s.next
	} else {
		p.first = s.next
	}
}

// compact slides every unlatched segment down in address order, so all free
// space not pinned in place by a latched segment ends up at top. The space
// between a latched segment and whatever precedes it stays as a hole. It
// returns the bytes moved.
//
// A latcher racing with compaction CASes the word after compact loaded it;
// it then finds seq moved and waits for the lock before reading the offset
// (see Latch), so a segment moved after its latch count was checked is
// never handed out at its old place. Copy readers see the moves word change
// and copy again.
func (p *Pool) compact() uint64 {
	atomic.AddUint64(&p.moves, 1) // odd: copy readers wait, or retry
	defer atomic.AddUint64(&p.moves, 1)
	var moved, w uint64       // w: where the next segment goes
	prev, spare := none, none // spare: removed holes' slots, linked through link
	for i := p.first; i != none; {
		s := p.slot(i)
		next := s.next
		switch w0 := s.loadWord(); {
		case stateOf(w0) == stateHole: // kept for a gap before a latched segment
			p.holeRemove(i, s.n>>p.alignLog)
			p.holes--
			p.holeBytes -= s.n
			s.link, spare = spare, i
			i = next
			continue
		case latchesOf(w0) == 0 && s.off != w:
			size := p.size(s.n)
			copy(p.view(w, size), p.view(s.off, size))
			s.off = w
			moved += size
		case s.off != w: // latched, with free space before it
			prev = p.linkAfter(prev, p.makeHole(&spare, w, s.off-w))
		}
		w = s.off + p.size(s.n)
		prev = p.linkAfter(prev, i)
		i = next
	}
	if prev != none {
		p.slot(prev).next = none
	} else {
		p.first = none
	}
	if check.On {
		check.Fill(p.view(w, p.top-w))
	}
	p.last, p.top = prev, w
	for spare != none {
		i := spare
		spare = p.slot(i).link
		p.freeSlotAt(i)
	}
	if moved > 0 {
		p.st.compactions++
		p.st.bytesMoved += int(moved)
	}
	return moved
}

// linkAfter links extent i after prev (none: first) and returns i.
func (p *Pool) linkAfter(prev, i uint32) uint32 {
	p.slot(i).prev = prev
	if prev != none {
		p.slot(prev).next = i
	} else {
		p.first = i
	}
	return i
}

// makeHole makes a hole of n bytes at off in the slot of a hole compaction
// removed, popped from spare: compaction leaves a gap before a latched
// segment only where it removed at least one hole since the previous latched
// segment, so there is always one. Taking no new slot, it cannot fail, and
// the slot, which no Ref names, needs no new generation.
func (p *Pool) makeHole(spare *uint32, off, n uint64) uint32 {
	i := *spare
	check.Invariant(i != none, "pool: compaction has no slot for a hole")
	s := p.slot(i)
	*spare = s.link
	s.off, s.n = off, n
	p.holes++
	p.holeBytes += n
	p.holeInsert(i, n>>p.alignLog)
	return i
}

// grow makes the pool's capacity at least need bytes, doubling where it
// can, up to MaxCapacity. It reports whether it grew.
func (p *Pool) grow(need uint64) bool {
	if need > uint64(p.maxCap) {
		return false
	}
	c := min(max(need, 2*p.capacity), uint64(p.maxCap))
	if p.data.Grow(int(c)) != nil {
		return false
	}
	p.capacity = c
	atomic.StoreUint64(&p.dataReady, uint64(p.data.Len()))
	p.st.grows++
	return true
}
