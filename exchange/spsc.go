// The single-producer single-consumer ring: the 1:1 fast path.

package exchange

import "sync/atomic"

// spsc is a bounded ring of queue slots with one producer and one
// consumer, after Lamport, with cached cursors (as in FastForward and the
// LMAX Disruptor): each side publishes its cursor with a release store and
// reads the other's only when its cached copy says the ring is full (the
// producer) or empty (the consumer). So a cache line crosses between the two
// CPUs about once per lap of a line of slots, not once per morsel, and a
// batch costs one cursor store. The producer may also write slots ahead of
// what it publishes (put, then publish), so that a consumer that does not
// need each slot at once reads the cursor once a batch.
//
// Invariants: head <= tail <= next <= head + len(slots); slots [head,
// tail) hold published indices, [tail, next) written ones not yet
// published; headSeen <= head and tailSeen <= tail; the producer alone
// writes next, tail, headSeen and the slots in [next, head + len); the
// consumer alone writes head and tailSeen.
type spsc struct {
	_        [64]byte
	tail     uint64 // slots published; published by the producer
	next     uint64 // next slot to write
	headSeen uint64 // the producer's copy of head
	_        [40]byte
	head     uint64 // next slot to read; published by the consumer
	tailSeen uint64 // the consumer's copy of tail
	_        [48]byte
	mask     uint64
	slots    []uint64
	_        [32]byte
}

func newSPSC(n int) *spsc { return &spsc{mask: uint64(n - 1), slots: make([]uint64, n)} }

// push appends v and publishes it; false if the ring is full.
func (r *spsc) push(v uint64) bool {
	if !r.put(v) {
		return false
	}
	storeRelease(&r.tail, r.next)
	return true
}

// put writes v without publishing it; false if the ring is full.
func (r *spsc) put(v uint64) bool {
	t := r.next
	if t-r.headSeen > r.mask {
		r.headSeen = atomic.LoadUint64(&r.head)
		if t-r.headSeen > r.mask {
			return false
		}
	}
	r.slots[t&r.mask] = v
	r.next = t + 1
	return true
}

// publish makes every written slot readable.
func (r *spsc) publish() {
	if r.next != r.tail {
		storeRelease(&r.tail, r.next)
	}
}

// pushN appends a prefix of vs, as much as fits, publishes it, and returns
// its length.
func (r *spsc) pushN(vs []uint64) int {
	t := r.next
	room := r.mask + 1 - (t - r.headSeen)
	if room < uint64(len(vs)) {
		r.headSeen = atomic.LoadUint64(&r.head)
		room = r.mask + 1 - (t - r.headSeen)
	}
	n := min(uint64(len(vs)), room)
	for i := range n {
		r.slots[(t+i)&r.mask] = vs[i]
	}
	r.next = t + n
	r.publish()
	return int(n)
}

// spaceFor reports whether n more values fit (for the producer).
func (r *spsc) spaceFor(n int) bool {
	if r.mask+1-(r.next-r.headSeen) >= uint64(n) {
		return true
	}
	r.headSeen = atomic.LoadUint64(&r.head)
	return r.mask+1-(r.next-r.headSeen) >= uint64(n)
}

// pop takes the oldest index; false if the ring is empty.
func (r *spsc) pop() (uint64, bool) {
	h := r.head
	if h == r.tailSeen {
		r.tailSeen = atomic.LoadUint64(&r.tail)
		if h == r.tailSeen {
			return 0, false
		}
	}
	v := r.slots[h&r.mask]
	storeRelease(&r.head, h+1)
	return v, true
}

// popN takes up to len(out) indices into out and returns how many.
func (r *spsc) popN(out []uint64) int {
	h := r.head
	if r.tailSeen-h < uint64(len(out)) {
		r.tailSeen = atomic.LoadUint64(&r.tail)
	}
	n := min(uint64(len(out)), r.tailSeen-h)
	for i := range n {
		out[i] = r.slots[(h+i)&r.mask]
	}
	if n > 0 {
		storeRelease(&r.head, h+n)
	}
	return int(n)
}

// ready reports whether a pop would find an index (for a parking consumer:
// head is loaded atomically because stop may be draining the ring meanwhile).
func (r *spsc) ready() bool { return atomic.LoadUint64(&r.tail) != atomic.LoadUint64(&r.head) }

// room reports whether a push would find a slot (for a parking producer).
func (r *spsc) room() bool { return r.next-atomic.LoadUint64(&r.head) <= r.mask }

// length returns how many indices are queued; racy, for Stats.
func (r *spsc) length() int { return int(atomic.LoadUint64(&r.tail) - atomic.LoadUint64(&r.head)) }
