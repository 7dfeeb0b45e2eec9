// The checked build's invariant checks (see the invariants on Pool).

package pool

import (
	"fmt"

	"github.com/offheap/offheap/internal/check"
)

// checkAfterMutation verifies the invariants after a mutation: every time
// while the pool is small, then about every extents/64th mutation, so the
// checked build stays amortized O(1) per operation. Callers hold the lock.
func (p *Pool) checkAfterMutation() {
	// A countdown, not mutations%(n/64): while the pool grows, mutations
	// and n rise together and the remainder would be zero every 64th.
	if n := uint64(p.nslots); n > 4096 {
		if p.mutations++; p.mutations < n/64 {
			return
		}
	}
	p.mutations = 0
	if err := p.verify(); err != nil {
		check.Invariant(false, "%s: %v", label(p.name), err)
	}
}

// verify walks the extent list, the hole index and the slot table and
// reports the first broken invariant. Callers hold the lock.
func (p *Pool) verify() error {
	var used, holeBytes uint64
	holes, segs := 0, 0
	prev, end := none, uint64(0)
	for i := p.first; i != none; i = p.slot(i).next {
		s := p.slot(i)
		switch {
		case s.prev != prev:
			return fmt.Errorf("extent %d: prev %d, want %d", i, s.prev, prev)
		case s.off != end:
			return fmt.Errorf("extent %d at %d, want %d: extents must tile [0, top)", i, s.off, end)
		case s.off&p.alignMask != 0:
			return fmt.Errorf("extent %d at %d: unaligned", i, s.off)
		}
		switch stateOf(s.word) {
		case stateHole:
			if p.isHole(prev) {
				return fmt.Errorf("holes %d and %d are adjacent", prev, i)
			}
			if s.n == 0 || s.n&p.alignMask != 0 {
				return fmt.Errorf("hole %d has size %d", i, s.n)
			}
			holes++
			holeBytes += s.n
		case stateUsed:
			if s.n == 0 {
				return fmt.Errorf("zero-length segment %d is in the extent list", i)
			}
			segs++
			used += p.size(s.n)
		default:
			return fmt.Errorf("free slot %d is in the extent list", i)
		}
		prev, end = i, s.off+p.extentSize(i)
	}
	switch {
	case prev != p.last:
		return fmt.Errorf("last extent %d, want %d", p.last, prev)
	case end != p.top:
		return fmt.Errorf("extents end at %d, top is %d", end, p.top)
	case p.top > p.capacity:
		return fmt.Errorf("top %d beyond capacity %d", p.top, p.capacity)
	case p.isHole(p.last):
		return fmt.Errorf("last extent %d is a hole", p.last)
	case used != p.usedBytes():
		return fmt.Errorf("segments hold %d bytes, top - holes is %d", used, p.usedBytes())
	case holes != p.holes || holeBytes != p.holeBytes:
		return fmt.Errorf("%d holes of %d bytes, counted %d of %d", holes, holeBytes, p.holes, p.holeBytes)
	}
	if err := p.verifyIndex(holes); err != nil {
		return err
	}
	return p.verifySlots(segs, holes)
}

// verifyIndex checks that the TLSF lists hold exactly the holes, each in its
// class, and that the bitmaps mark exactly the non-empty lists.
func (p *Pool) verifyIndex(holes int) error {
	t := &p.free
	n := 0
	for f := range t.heads {
		for s := range t.heads[f] {
			head := t.heads[f][s]
			if (head != none) != (t.slMap[f]&(1<<s) != 0) {
				return fmt.Errorf("class (%d, %d): head %d but bitmap bit %v", f, s, head, t.slMap[f]&(1<<s) != 0)
			}
			back := none
			for i := head; i != none; i = p.slot(i).link {
				h := p.slot(i)
				if ff, ss := class(h.n >> p.alignLog); stateOf(h.word) != stateHole || ff != f || ss != s || h.blink != back {
					return fmt.Errorf("slot %d in class (%d, %d) list: state %d size %d blink %d", i, f, s, stateOf(h.word), h.n, h.blink)
				}
				back = i
				if n++; n > holes {
					return fmt.Errorf("hole lists hold more than the %d holes", holes)
				}
			}
		}
		if (t.slMap[f] != 0) != (t.flMap&(1<<f) != 0) {
			return fmt.Errorf("first level %d: second-level map %#x, first-level bit %v", f, t.slMap[f], t.flMap&(1<<f) != 0)
		}
	}
	if n != holes {
		return fmt.Errorf("hole lists hold %d holes, the extent list %d", n, holes)
	}
	return nil
}

// verifySlots checks the free-slot stack and the counts of segments and slots.
func (p *Pool) verifySlots(extentSegs, holes int) error {
	free, segs, zero, pending := 0, 0, 0, 0
	for i := p.freeSlot; i != none; i = p.slot(i).link {
		if w := p.slot(i).word; stateOf(w) != stateFree || genOf(w) == p.retiredGen() {
			return fmt.Errorf("slot %d on the free stack has state %d, generation %d", i, stateOf(w), genOf(w))
		}
		if free++; free > int(p.nslots) {
			return fmt.Errorf("free-slot stack has a cycle")
		}
	}
	for i := range p.nslots {
		w := p.slot(i).word
		if stateOf(w) != stateUsed {
			continue
		}
		if genOf(w) == p.retiredGen() {
			return fmt.Errorf("segment %d has the retired generation", i)
		}
		segs++
		if p.slot(i).n == 0 {
			zero++
		}
		if w&flagRelease != 0 {
			if latchesOf(w) == 0 {
				return fmt.Errorf("released segment %d has no latches but was not freed", i)
			}
			pending++
		}
	}
	switch {
	case segs != p.liveSegments():
		return fmt.Errorf("%d segments in the table, commits - releases + pending is %d", segs, p.liveSegments())
	case segs-zero != extentSegs:
		return fmt.Errorf("%d segments hold space, %d in the extent list", segs-zero, extentSegs)
	case pending != p.pending:
		return fmt.Errorf("%d released segments wait for an unlatch, pending %d", pending, p.pending)
	case free+holes+segs+p.retired != int(p.nslots):
		return fmt.Errorf("%d free slots + %d holes + %d segments + %d retired != %d slots in use", free, holes, segs, p.retired, p.nslots)
	}
	return nil
}
