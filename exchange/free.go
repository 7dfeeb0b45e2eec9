// The free rings: released records, with their segments, on their way back
// to the producers for reuse.

package exchange

import "sync/atomic"

// freeRings carry released records from consumers to producers. With at
// most maxMatrix producer-consumer pairs there is one single-writer,
// single-reader ring per pair (consumer c writes ring c*n+p, producer p
// reads its column), so no cell is ever claimed and left unpublished by a
// goroutine the scheduler has preempted: a release never finds its ring
// full while it is nearly empty, nor a reserve empty while it holds
// records, either of which would send a segment to the pool and take
// another from it. A consumer spreads its releases over the producers
// round-robin, skipping those that have closed; a producer takes from its
// rings round-robin. Beyond maxMatrix pairs there is one Vyukov ring.
//
// The rings hold at most capBytes of segments between them (half the
// budget), each ring its share: a release that would go over it sends its
// segment to the pool instead. So the exchange's memory is bounded by the
// budget, one morsel, these rings and what the ends hold.
//
// Invariant: exactly one of rings and shared is set; a ring's in - out is
// the bytes of the segments in it, at most its cap.
type freeRings struct {
	rings  []freeRing // consumer c to producer p at c*n+p
	n      int        // producers
	shared *freeRing  // beyond maxMatrix pairs: a Vyukov ring, and atomic counts
}

// freeRing is one ring and its byte count: in is the writer's (bytes
// pushed), out the reader's (bytes popped); the writer caches out.
type freeRing struct {
	one     *spsc
	many    *mpmc
	cap     uint64
	_       [40]byte
	in      uint64 // bytes pushed: the writer's; atomic for the shared ring
	outSeen uint64 // the writer's copy of out
	_       [48]byte
	out     uint64 // bytes popped: the reader's, published; atomic for the shared ring
	_       [56]byte
}

// maxMatrix is the most producer-consumer pairs that get a ring each.
const maxMatrix = 256

func newFreeRings(slots, capBytes, producers, consumers int) *freeRings {
	f := &freeRings{n: producers}
	if producers*consumers > maxMatrix {
		f.shared = &freeRing{many: newMPMC(queueLen(slots), consumers > 1, producers > 1), cap: uint64(capBytes)}
		return f
	}
	pairs := producers * consumers
	f.rings = make([]freeRing, pairs)
	for i := range f.rings {
		f.rings[i] = freeRing{one: newSPSC(queueLen(max(64, slots/pairs))), cap: uint64(capBytes / pairs)}
	}
	return f
}

// push hands released record i, of size bytes, from consumer c to a
// producer, starting at c's round-robin position *next and skipping
// closed producers; false if every open producer's ring from c is full.
func (f *freeRings) push(c int, next *int, ps []*Producer, i, size uint32) bool {
	if f.shared != nil {
		return f.shared.pushShared(i, size)
	}
	for k := range f.n {
		p := (*next + k) % f.n
		if atomic.LoadUint32(&ps[p].done) == 0 && f.rings[c*f.n+p].push(i, size) {
			*next = (p + 1) % f.n
			return true
		}
	}
	return false
}

// push adds record i of size bytes to a single-writer ring if it has room
// in slots and bytes. Its writer calls it.
func (r *freeRing) push(i, size uint32) bool {
	if r.in-r.outSeen+uint64(size) > r.cap {
		r.outSeen = atomic.LoadUint64(&r.out)
		if r.in-r.outSeen+uint64(size) > r.cap {
			return false
		}
	}
	if !r.one.push(slotOf(i, size)) {
		return false
	}
	storeRelease(&r.in, r.in+uint64(size))
	return true
}

// pushN pushes a prefix of the slots vs (record and size each) that fits a
// single-writer ring in slots and bytes, and returns its length.
func (r *freeRing) pushN(vs []uint64) int {
	var bytes uint64
	k := 0
	for ; k < len(vs); k++ {
		_, size := unslot(vs[k])
		if r.in-r.outSeen+bytes+uint64(size) > r.cap {
			r.outSeen = atomic.LoadUint64(&r.out)
			if r.in-r.outSeen+bytes+uint64(size) > r.cap {
				break
			}
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

func (r *freeRing) pushShared(i, size uint32) bool {
	if atomic.AddUint64(&r.in, uint64(size))-atomic.LoadUint64(&r.out) > r.cap || !r.many.push(slotOf(i, size)) {
		atomic.AddUint64(&r.in, -uint64(size))
		return false
	}
	return true
}

// popN takes up to len(out) slots into out, counting their bytes out. Its
// reader calls it.
func (r *freeRing) popN(out []uint64) int {
	var n int
	if r.one != nil {
		n = r.one.popN(out)
	} else {
		n = r.many.popN(out)
		for try := 0; n == 0 && try < refillTries && atomic.LoadUint64(&r.many.tail) != atomic.LoadUint64(&r.many.head); try++ {
			pause(16) // a consumer claimed a cell and is about to publish it
			n = r.many.popN(out)
		}
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

func (r *freeRing) ready() bool {
	if r.one != nil {
		return r.one.ready()
	}
	return r.many.ready()
}

// popN takes up to len(out) slots for producer p, starting at its
// round-robin position *next, and returns how many.
func (f *freeRings) popN(p int, next *int, out []uint64) int {
	if f.shared != nil {
		return f.shared.popN(out)
	}
	m := len(f.rings) / f.n
	got := 0
	for k := 0; k < m && got < len(out); k++ {
		got += f.rings[((*next+k)%m)*f.n+p].popN(out[got:])
	}
	*next = (*next + 1) % m
	return got
}

// ready reports whether producer p would find a record (for a parking producer).
func (f *freeRings) ready(p int) bool {
	if f.shared != nil {
		return f.shared.ready()
	}
	for c := range len(f.rings) / f.n {
		if f.rings[c*f.n+p].ready() {
			return true
		}
	}
	return false
}

// drain passes every record left in producer p's rings (p < 0: every
// ring) to give. Only their reader may call it, or stop once no end is
// busy.
func (f *freeRings) drain(p int, give func(i uint32)) {
	if f.shared != nil {
		f.shared.drain(give)
		return
	}
	for k := range f.rings {
		if p < 0 || k%f.n == p {
			f.rings[k].drain(give)
		}
	}
}

func (r *freeRing) drain(give func(i uint32)) {
	var buf [refillLen]uint64
	for n := r.popN(buf[:]); n > 0; n = r.popN(buf[:]) {
		for _, v := range buf[:n] {
			i, _ := unslot(v)
			give(i)
		}
	}
}
