// The policy's frequency sketch: a count-min sketch of 4-bit counters that
// hits update without a lock, aged by halving.

package cache

import (
	"math/bits"
	"sync/atomic"

	"github.com/offheap/offheap/internal/proc"
	"github.com/offheap/offheap/vmem"
)

// sketch estimates how often each key hash was seen recently (0..15).
//
// Each key maps to one 64-bit word and to one 4-bit counter in each of the
// word's four groups of four counters, so the four counters are always
// distinct and an increment is one load and one compare-and-swap. The
// estimate is the smallest of the four. An increment that loses a race is
// dropped: the sketch is an estimate, and a lost count changes nothing but
// the estimate.
//
// Aging: once the increments since the last aging (counted by the policy's
// hitCounts) reach sample, 10 times the entries it sizes for as in TinyLFU,
// every counter is halved.
//
// Invariants: width is a power of two, sketchMinWidth <= width <=
// len(table); only table[:width] is touched; sample >= 10.
type sketch struct {
	region  *vmem.Region
	table   []uint64      // the whole reservation; table[:width] is ready
	width   atomic.Uint64 // words in use; hits read it, resize stores it after growing
	sample  int64
	maxSize uint64
}

const (
	sketchMinWidth = 8192 // words
	groupNibbles   = 4
)

// init reserves a sketch able to grow to maxEntries keys.
func (s *sketch) init(maxEntries uint64) error {
	s.maxSize = max(nextPow2(maxEntries), sketchMinWidth)
	r, err := vmem.Reserve(int(s.maxSize)*8, &vmem.Options{Name: "cache policy sketch"})
	if err != nil {
		return err
	}
	if err := r.Grow(sketchMinWidth * 8); err != nil {
		_ = r.Close()
		return err
	}
	s.region, s.table = r, policyTable[uint64](r, int(s.maxSize))
	s.width.Store(sketchMinWidth)
	s.sample = 10
	return nil
}

// counters returns the word of h and the shifts of its four counters.
func (s *sketch) counters(h uint64) (word *uint64, shifts [groupNibbles]uint) {
	h = spread(h)
	word = &s.table[h&(s.width.Load()-1)]
	for i := range groupNibbles {
		shifts[i] = uint(4 * (groupNibbles*i + int(h>>(32+2*i))&3))
	}
	return word, shifts
}

// frequency returns the estimated count of h.
func (s *sketch) frequency(h uint64) int {
	word, shifts := s.counters(h)
	w := atomic.LoadUint64(word)
	f := uint64(15)
	for _, sh := range shifts {
		f = min(f, w>>sh&15)
	}
	return int(f)
}

// increment counts one access to h and reports whether a counter changed.
// Lock-free; safe with everything. Callers are pinned to their P, so that
// shrink can wait out (proc.Quiesce) every increment that may still use the
// old width before it releases the table's upper part.
func (s *sketch) increment(h uint64) bool {
	word, shifts := s.counters(h)
	w := atomic.LoadUint64(word)
	n := w
	for _, sh := range shifts {
		if n>>sh&15 < 15 {
			n += 1 << sh
		}
	}
	return n != w && atomic.CompareAndSwapUint64(word, w, n)
}

// age halves every counter and returns how many increments to take off the
// count since the last aging: as TinyLFU does, half of them, and a quarter
// of the odd counters (each key has four) for the halves lost to
// truncation, so the next aging comes after half a period. Callers hold the
// policy's lock.
func (s *sketch) age(added int64) (forget int64) {
	odd := 0
	for i := range s.table[:s.width.Load()] {
		for {
			old := atomic.LoadUint64(&s.table[i])
			if atomic.CompareAndSwapUint64(&s.table[i], old, old>>1&0x7777777777777777) {
				odd += bits.OnesCount64(old & 0x1111111111111111)
				break
			}
		}
	}
	return added - max((added-int64(odd/4))/2, 0)
}

// resize sizes the sketch for entries keys: it doubles when entries outgrow
// it and halves (giving the memory back) when it is four times too large,
// keeping every key's estimate. Callers hold the policy's lock.
func (s *sketch) resize(entries uint64) {
	want := min(max(nextPow2(entries), sketchMinWidth), s.maxSize)
	if w := s.width.Load(); want > w || want*4 <= w {
		s.setWidth(want)
	}
	s.sample = int64(10 * max(entries, 1))
}

// setWidth makes want words the width, keeping each key's counters: a key's
// word at the new width, h&(want-1), is at h&(old-1) at the old one, so
// growing tiles the old table and shrinking merges pairs of words (each
// counter the larger of the two). Growing makes the new words ready before
// publishing the width; shrinking publishes the width, waits until no
// increment can still use the old one, and gives the rest back to the
// operating system. Offsets are page multiples: widths are at least 64 KiB.
func (s *sketch) setWidth(want uint64) {
	old := s.width.Load()
	lo, hi := int(min(old, want))*8, int(max(old, want))*8
	if want > old {
		if s.region.Grow(hi) != nil || s.region.Reuse(lo, hi-lo) != nil {
			return // keep the current width: the estimates stay valid, only coarser
		}
		for i := old; i < want; i++ {
			atomic.StoreUint64(&s.table[i], atomic.LoadUint64(&s.table[i&(old-1)]))
		}
		s.width.Store(want)
		return
	}
	for i := want; i < old; i++ {
		j := i & (want - 1)
		atomic.StoreUint64(&s.table[j], maxNibbles(atomic.LoadUint64(&s.table[j]), atomic.LoadUint64(&s.table[i])))
	}
	s.width.Store(want)
	proc.Quiesce()
	_ = s.region.Release(lo, hi-lo)
}

// maxNibbles returns the nibble-wise maximum of a and b.
func maxNibbles(a, b uint64) uint64 {
	var m uint64
	for sh := 0; sh < 64; sh += 4 {
		m |= max(a>>sh&15, b>>sh&15) << sh
	}
	return m
}

// spread mixes a key hash so that the cache's hash and ours are independent.
func spread(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}

// nextPow2 returns the least power of two >= n (1 for n = 0).
func nextPow2(n uint64) uint64 {
	if n <= 1 {
		return 1
	}
	return 1 << bits.Len64(n-1)
}
