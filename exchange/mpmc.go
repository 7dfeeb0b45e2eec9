// The multi-producer or multi-consumer ring, for every queue the 1:1 ring cannot serve.

package exchange

import "sync/atomic"

// mpmc is a bounded ring of queue slots for several producers or several
// consumers, after Dmitry Vyukov's bounded MPMC queue: each cell carries a
// sequence number that says whose turn it is, so producers and consumers
// meet only in the cells and in their own cursor. A side with one member
// claims cells with a plain store of its cursor; a side with several claims
// them with a CAS. Batches claim several cells with one CAS.
//
// Invariants: for position p and its cell c = cells[p&mask], c.seq == p means
// the cell is free for the producer of p; c.seq == p+1 means it holds the
// index published at p; c.seq == p+len(cells) means it was consumed and is
// free for the producer of the next lap. head <= tail <= head + len(cells),
// and each cursor only grows.
type mpmc struct {
	_     [64]byte
	tail  uint64 // next position to claim for writing
	_     [56]byte
	head  uint64 // next position to claim for reading
	_     [56]byte
	mask  uint64
	cells []cell
	multiProducer,
	multiConsumer bool
	_ [24]byte
}

type cell struct {
	seq uint64
	val uint64
}

func newMPMC(n int, multiProducer, multiConsumer bool) *mpmc {
	r := &mpmc{mask: uint64(n - 1), cells: make([]cell, n), multiProducer: multiProducer, multiConsumer: multiConsumer}
	for i := range r.cells {
		r.cells[i].seq = uint64(i)
	}
	return r
}

// push appends v; false if the ring is full.
func (r *mpmc) push(v uint64) bool {
	pos := atomic.LoadUint64(&r.tail)
	for {
		c := &r.cells[pos&r.mask]
		switch d := int64(atomic.LoadUint64(&c.seq) - pos); {
		case d < 0:
			return false // full: the cell still holds last lap's index
		case d > 0:
			pos = atomic.LoadUint64(&r.tail) // another producer took it
		case r.claim(&r.tail, pos, 1, r.multiProducer):
			c.val = v
			storeRelease(&c.seq, pos+1)
			return true
		default:
			pos = atomic.LoadUint64(&r.tail)
		}
	}
}

// pushN appends a prefix of vs, as much as fits, and returns its length.
func (r *mpmc) pushN(vs []uint64) int {
	pos := atomic.LoadUint64(&r.tail)
	for {
		n := r.run(pos, uint64(len(vs)), 0)
		if n == 0 {
			if int64(atomic.LoadUint64(&r.cells[pos&r.mask].seq)-pos) < 0 {
				return 0 // full: the cell still holds last lap's index
			}
			pos = atomic.LoadUint64(&r.tail) // another producer took it
			continue
		}
		if !r.claim(&r.tail, pos, n, r.multiProducer) {
			pos = atomic.LoadUint64(&r.tail)
			continue
		}
		for i := range n {
			c := &r.cells[(pos+i)&r.mask]
			c.val = vs[i]
			storeRelease(&c.seq, pos+i+1)
		}
		return int(n)
	}
}

// pop takes the oldest index; false if the ring is empty.
func (r *mpmc) pop() (uint64, bool) {
	pos := atomic.LoadUint64(&r.head)
	for {
		c := &r.cells[pos&r.mask]
		switch d := int64(atomic.LoadUint64(&c.seq) - (pos + 1)); {
		case d < 0:
			return 0, false // empty: not yet published
		case d > 0:
			pos = atomic.LoadUint64(&r.head) // another consumer took it
		case r.claim(&r.head, pos, 1, r.multiConsumer):
			v := c.val
			storeRelease(&c.seq, pos+r.mask+1)
			return v, true
		default:
			pos = atomic.LoadUint64(&r.head)
		}
	}
}

// popN takes up to len(out) indices into out and returns how many.
func (r *mpmc) popN(out []uint64) int {
	pos := atomic.LoadUint64(&r.head)
	for {
		n := r.run(pos, uint64(len(out)), 1)
		if n == 0 {
			if int64(atomic.LoadUint64(&r.cells[pos&r.mask].seq)-(pos+1)) < 0 {
				return 0 // empty: not yet published
			}
			pos = atomic.LoadUint64(&r.head) // another consumer took it
			continue
		}
		if !r.claim(&r.head, pos, n, r.multiConsumer) {
			pos = atomic.LoadUint64(&r.head)
			continue
		}
		for i := range n {
			c := &r.cells[(pos+i)&r.mask]
			out[i] = c.val
			storeRelease(&c.seq, pos+i+r.mask+1)
		}
		return int(n)
	}
}

// run counts the cells from pos on, up to max, whose sequence is their
// position plus off: free cells (off 0) or published ones (off 1).
func (r *mpmc) run(pos, max, off uint64) uint64 {
	n := uint64(0)
	for n < max && atomic.LoadUint64(&r.cells[(pos+n)&r.mask].seq) == pos+n+off {
		n++
	}
	return n
}

// claim advances cursor from pos by n: with a plain store for a side of
// one, with a CAS for a side of several; false if another member moved it.
func (r *mpmc) claim(cursor *uint64, pos, n uint64, multi bool) bool {
	if multi {
		return atomic.CompareAndSwapUint64(cursor, pos, pos+n)
	}
	storeRelease(cursor, pos+n)
	return true
}

// ready reports whether a pop would find an index (for a parking consumer).
func (r *mpmc) ready() bool {
	pos := atomic.LoadUint64(&r.head)
	return atomic.LoadUint64(&r.cells[pos&r.mask].seq) == pos+1
}

// room reports whether a push would find a cell (for a parking producer).
func (r *mpmc) room() bool {
	pos := atomic.LoadUint64(&r.tail)
	return int64(atomic.LoadUint64(&r.cells[pos&r.mask].seq)-pos) >= 0
}

// length returns how many indices are claimed for writing and not yet for
// reading; racy, for Stats.
func (r *mpmc) length() int {
	return int(max(0, int64(atomic.LoadUint64(&r.tail)-atomic.LoadUint64(&r.head))))
}
