// The hole index: a two-level segregated fit (TLSF) over hole sizes in
// alignment units, so finding a hole that fits takes a few bit operations.

package pool

import "math/bits"

// slBits is log2 of the second-level classes per power of two. Sizes below
// 2^slBits units each have an exact class; above, a class spans 1/16 of its
// power of two.
const (
	slBits  = 4
	slCount = 1 << slBits
	flCount = 64 - slBits + 1
)

// tlsf is a two-level segregated fit index of holes: heads of doubly linked
// lists (through slot.link and slot.blink) per size class, and bitmaps of
// the non-empty ones. It stores slot indices, not pointers.
type tlsf struct {
	flMap uint64                   // bit f: some class in first level f is non-empty
	slMap [flCount]uint32          // bit s: class (f, s) is non-empty
	heads [flCount][slCount]uint32 // first hole of each class, or none
}

func (t *tlsf) init() {
	for f := range t.heads {
		for s := range t.heads[f] {
			t.heads[f][s] = none
		}
	}
}

// class returns the class of a hole of u units (u > 0): the class whose
// range holds u.
func class(u uint64) (f, s int) {
	if u < slCount {
		return 0, int(u)
	}
	top := bits.Len64(u) - 1 // >= slBits
	return top - slBits + 1, int(u>>(top-slBits)) & (slCount - 1)
}

// classUp returns the first class all of whose holes have at least u units;
// ok is false if there is none.
func classUp(u uint64) (f, s int, ok bool) {
	if u >= slCount {
		step := uint64(1)<<(bits.Len64(u)-1-slBits) - 1
		if u+step < u {
			return 0, 0, false
		}
		u += step
	}
	f, s = class(u)
	return f, s, f < flCount
}

// insert adds hole i of u units.
func (p *Pool) holeInsert(i uint32, u uint64) {
	t := &p.free
	f, s := class(u)
	h := p.slot(i)
	h.link, h.blink = t.heads[f][s], none
	if h.link != none {
		p.slot(h.link).blink = i
	}
	t.heads[f][s] = i
	t.flMap |= 1 << f
	t.slMap[f] |= 1 << s
}

// holeRemove takes hole i of u units out of its list.
func (p *Pool) holeRemove(i uint32, u uint64) {
	t := &p.free
	h := p.slot(i)
	if h.blink != none {
		p.slot(h.blink).link = h.link
	} else {
		f, s := class(u)
		t.heads[f][s] = h.link
		if h.link == none {
			t.slMap[f] &^= 1 << s
			if t.slMap[f] == 0 {
				t.flMap &^= 1 << f
			}
		}
	}
	if h.link != none {
		p.slot(h.link).blink = h.blink
	}
}

// holeFind returns a hole of at least u units: the first in the smallest
// non-empty class whose every hole fits (good fit, O(1)), or else, since
// that rounds up, one from u's own class that happens to fit. It returns
// none if no hole fits.
func (p *Pool) holeFind(u uint64) uint32 {
	t := &p.free
	if f, s, ok := classUp(u); ok {
		sm := t.slMap[f] & (^uint32(0) << s)
		if sm == 0 {
			fm := t.flMap & (^uint64(0) << (f + 1))
			if f+1 >= 64 || fm == 0 {
				return p.holeScan(u)
			}
			f = bits.TrailingZeros64(fm)
			sm = t.slMap[f]
		}
		return t.heads[f][bits.TrailingZeros32(sm)]
	}
	return p.holeScan(u)
}

// holeScan looks through u's own class for a hole of at least u units. Its
// holes span less than 1/16 of a power of two, so most fit; it runs only
// when no larger class has a hole, the last try before compaction, which
// would cost far more.
func (p *Pool) holeScan(u uint64) uint32 {
	f, s := class(u)
	for i := p.free.heads[f][s]; i != none; i = p.slot(i).link {
		if p.slot(i).n>>p.alignLog >= u {
			return i
		}
	}
	return none
}
