// Queues: a ring of queue slots with the events its two sides park on.

package exchange

import "sync/atomic"

// queue is one partition (or the shared queue, or one broadcast consumer's
// queue): a ring, the events its sides wait on, and the
// bytes sent to it for the partition budget.
//
// Invariant: exactly one of one and many is set; one when the queue has one
// writer and one reader.
type queue struct {
	one      *spsc
	many     *mpmc
	notEmpty event  // readers waiting for an index
	notFull  event  // writers waiting for a slot, or for partition bytes
	sent     uint64 // bytes sent to this partition; written like Exchange.sent
	_        [56]byte
	closed   uint32 // atomic: its readers have closed; writes fail
	_        [60]byte
}

func newQueue(n, writers, readers int) *queue {
	q := &queue{}
	if writers == 1 && readers == 1 {
		q.one = newSPSC(n)
	} else {
		q.many = newMPMC(n, writers > 1, readers > 1)
	}
	q.notEmpty.init(readers)
	q.notFull.init(writers)
	return q
}

func (q *queue) push(v uint64) bool {
	if q.one != nil {
		return q.one.push(v)
	}
	return q.many.push(v)
}

func (q *queue) pushN(vs []uint64) int {
	if q.one != nil {
		return q.one.pushN(vs)
	}
	return q.many.pushN(vs)
}

func (q *queue) pop() (uint64, bool) {
	if q.one != nil {
		return q.one.pop()
	}
	return q.many.pop()
}

func (q *queue) popN(out []uint64) int {
	if q.one != nil {
		return q.one.popN(out)
	}
	return q.many.popN(out)
}

// ready reports whether a pop would find an index.
func (q *queue) ready() bool {
	if q.one != nil {
		return q.one.ready()
	}
	return q.many.ready()
}

// room reports whether a push would find a slot.
func (q *queue) room() bool {
	if q.one != nil {
		return q.one.room()
	}
	return q.many.room()
}

// length returns how many indices are queued; racy, for Stats.
func (q *queue) length() int {
	if q.one != nil {
		return q.one.length()
	}
	return q.many.length()
}

func (q *queue) isClosed() bool { return atomic.LoadUint32(&q.closed) != 0 }
