// The free rings: released records, with their segments, on their way back
// to the producers for reuse.

package exchange

import "sync/atomic"

// freeRings carry released records from consumers to producers: one ring
// per consumer, which that consumer alone writes (so it publishes a cell as
// it claims it, and a release never finds its ring full while a preempted
// writer holds a claimed cell) and any producer reads, claiming cells with
// a CAS when there are several (a Lamport ring, without one, when there is
// one). A producer refills its stash from the rings round-robin, so a
// record goes to whichever producer needs one next: none piles up behind a
// producer that is busy elsewhere while another takes fresh segments from
// the pool.
//
// The rings hold at most capBytes of segments between them (half the
// budget), each ring its share: a release that would go over it sends its
// segment to the pool instead. So the exchange's memory is bounded by the
// budget, one morsel, these rings and what the ends hold.
//
// Invariant: a ring's in - out is the bytes of the segments in it, at most
// its cap.
type freeRings struct {
	rings []freeRing // one per consumer
}

// freeRing is one consumer's ring and its byte count: in is the writer's
// (bytes pushed), out the readers' (bytes popped, added atomically when
// there are several); the writer caches out.
type freeRing struct {
	one     *spsc // one producer
	many    *mpmc // several: single writer, CAS readers
	cap     uint64
	_       [40]byte
	in      uint64 // bytes pushed: the writer's
	outSeen uint64 // the writer's copy of out
	_       [48]byte
	out     uint64 // bytes popped: the readers'
	_       [56]byte
}

func newFreeRings(slots, capBytes, producers, consumers int) *freeRings {
	f := &freeRings{rings: make([]freeRing, consumers)}
	per := queueLen(max(64, slots/consumers))
	for i := range f.rings {
		r := &f.rings[i]
		r.cap = uint64(capBytes / consumers)
		if producers == 1 {
			r.one = newSPSC(per)
		} else {
			r.many = newMPMC(per, false, true)
		}
	}
	return f
}

// push adds released record i, of size bytes, to consumer c's ring; false
// if it has no room in slots or bytes. Consumer c calls it.
func (f *freeRings) push(c int, i, size uint32) bool { return f.rings[c].push(i, size) }

func (r *freeRing) push(i, size uint32) bool {
	if !r.fits(uint64(size)) {
		return false
	}
	ok := false
	if r.one != nil {
		// A lone producer does not need each record at once: publish a
		// batch at a time, so it reads the cursor once a batch.
		if ok = r.one.put(slotOf(i, size)); ok && r.one.next-r.one.tail >= freeBatch {
			r.one.publish()
		}
	} else {
		ok = r.many.push(slotOf(i, size))
	}
	if ok {
		storeRelease(&r.in, r.in+uint64(size))
	}
	return ok
}

// freeBatch is how many released records a consumer writes to a lone
// producer's free ring before it publishes them (see flush).
const freeBatch = 16

// flush publishes what the ring's writer has written. The consumer calls it
// before it parks and when it closes; stop calls it once no end is busy.
func (r *freeRing) flush() {
	if r.one != nil {
		r.one.publish()
	}
}

// fits reports whether bytes more fit the ring's byte cap. Its writer calls it.
func (r *freeRing) fits(bytes uint64) bool {
	if r.in-r.outSeen+bytes <= r.cap {
		return true
	}
	r.outSeen = atomic.LoadUint64(&r.out)
	return r.in-r.outSeen+bytes <= r.cap
}

// pushN pushes a prefix of the slots vs (record and size each) that fits a
// one-producer ring in slots and bytes, and returns its length.
func (r *freeRing) pushN(vs []uint64) int {
	var bytes uint64
	k := 0
	for ; k < len(vs); k++ {
		_, size := unslot(vs[k])
		if !r.fits(bytes + uint64(size)) {
			break
		}
		bytes += uint64(size)
	}
	n := r.one.pushN(vs[:k])
	for _, v := range vs[n:k] {
		_, size := unslot(v)
		bytes -= uint64(size)
	}
	storeRelease(&r.in, r.in+bytes)
	return n
}

// popN takes up to len(out) slots into out and counts their bytes out.
func (r *freeRing) popN(out []uint64) int {
	var n int
	if r.one != nil {
		n = r.one.popN(out)
	} else {
		n = r.many.popN(out)
	}
	if n == 0 {
		return 0
	}
	var bytes uint64
	for _, v := range out[:n] {
		_, size := unslot(v)
		bytes += uint64(size)
	}
	if r.one != nil {
		storeRelease(&r.out, r.out+bytes)
	} else {
		atomic.AddUint64(&r.out, bytes)
	}
	return n
}

// popN takes up to len(out) slots from the rings, starting at the round-
// robin position *next, and returns how many.
func (f *freeRings) popN(next *int, out []uint64) int {
	m := len(f.rings)
	got := 0
	for k := 0; k < m && got < len(out); k++ {
		got += f.rings[(*next+k)%m].popN(out[got:])
	}
	*next = (*next + 1) % m
	return got
}

// drain passes every record left in the rings to give. A producer may call
// it, or stop once no end is busy.
func (f *freeRings) drain(give func(i uint32)) {
	var buf [refillLen]uint64
	for k := range f.rings {
		r := &f.rings[k]
		for n := r.popN(buf[:]); n > 0; n = r.popN(buf[:]) {
			for _, v := range buf[:n] {
				i, _ := unslot(v)
				give(i)
			}
		}
	}
}
