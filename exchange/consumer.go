// The consumer end: Recv a morsel, read it, Release it, Close.

package exchange

import (
	"fmt"
	"io"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
)

// Consumer is one consumer's end of an exchange. It is not safe for
// concurrent use: each consumer goroutine takes its own (Exchange.Consumer).
//
// Invariants: busy is 1 exactly while an operation touches a queue or the
// free rings, and 0 while it parks; released only grows.
type Consumer struct {
	_        [64]byte
	busy     uint32 // see Exchange, "Ends, closing and cancellation"
	closed   bool
	x        *Exchange
	index    int
	q        *queue
	bit      uint64 // Broadcast: this consumer's bit in a record's word
	released uint64 // bytes of morsels this end released; published (the budgets)
	held     uint64 // handles this end holds (wrapping); published
	recvs    uint64 // morsels received; published
	frees    uint64 // morsels released; published
	waits    uint64 // times parked; published
	scratch  []uint64
	_        [64]byte
}

func newConsumer(x *Exchange, i int) *Consumer {
	c := &Consumer{x: x, index: i, scratch: make([]uint64, batchLen)}
	switch x.topo {
	case Shared:
		c.q = x.queues[0]
	case Partitioned:
		c.q = x.queues[i]
	case Broadcast:
		c.q = x.queues[i]
		c.bit = 1 << i
	}
	return c
}

// Index returns the end's number: with Partitioned, the partition it reads.
func (c *Consumer) Index() int { return c.index }

func (c *Consumer) enter() bool {
	storeRelease32(&c.busy, 1)
	return atomic.LoadUint32(&c.x.stopped) == 0
}

func (c *Consumer) leave() { storeRelease32(&c.busy, 0) }

// Recv returns the next morsel, waiting for one if need be. Once every
// producer has closed and the queue is empty it returns io.EOF; once the
// exchange stops, ErrClosed or ErrCanceled. The morsel is the consumer's
// until it calls Release.
func (c *Consumer) Recv() (Morsel, error) {
	if c.x.simple && !c.closed {
		if m, ok := c.recvFast(); ok {
			return m, nil
		}
	}
	return c.recv()
}

func (c *Consumer) recv() (Morsel, error) {
	if c.closed {
		return Morsel{}, c.x.errorf("recv", ErrClosed)
	}
	if !c.enter() {
		c.leave()
		return Morsel{}, c.x.errorf("recv", c.x.stopCause())
	}
	v, ok := c.q.pop()
	if !ok {
		var err error
		if v, err = c.recvSlow(); err != nil {
			c.leave()
			return Morsel{}, err
		}
	}
	m := c.accept(v)
	c.q.notFull.signal()
	c.leave()
	storeRelease(&c.recvs, c.recvs+1)
	return m, nil
}

// recvSlow waits for a slot to pop: it returns io.EOF once the producers
// have all closed and the queue is empty. Callers are busy.
func (c *Consumer) recvSlow() (uint64, error) {
	for {
		if atomic.LoadUint32(&c.x.ended) != 0 {
			if v, ok := c.q.pop(); ok {
				return v, nil
			}
			return 0, io.EOF
		}
		c.x.free.rings[c.index].flush() // the producer may want them while this end waits
		c.leave()
		storeRelease(&c.waits, c.waits+1)
		c.q.notEmpty.wait(func() bool { return c.q.ready() || c.x.isStopped() || atomic.LoadUint32(&c.x.ended) != 0 },
			c.x.stopCh, c.x.endCh)
		if !c.enter() {
			return 0, c.x.errorf("recv", c.x.stopCause())
		}
		if v, ok := c.q.pop(); ok {
			return v, nil
		}
	}
}

// accept makes the record in popped slot v this end's and returns its handle.
func (c *Consumer) accept(v uint64) Morsel {
	x := c.x
	i, n := unslot(v)
	ci := x.recs.cons(i)
	var g uint32
	if x.topo == Broadcast {
		g = genOf(atomic.LoadUint64(&ci.word))
		atomic.OrUint32(&ci.got, uint32(c.bit))
	} else {
		g = genOf(ci.word) + 1
		storeRelease(&ci.word, uint64(g)<<genShift)
		ci.owner = uint32(c.index)
		if check.On {
			s := x.recs.seg(i)
			check.Invariant(s.getState() == stateQueued, "received record %d in state %d", i, s.getState())
			s.setState(stateReceived)
		}
	}
	storeRelease(&c.held, c.held+1)
	return x.handle(i, g, n)
}

// RecvBatch receives up to len(ms) morsels into ms, waiting only for the
// first, and returns how many; errors as Recv's.
func (c *Consumer) RecvBatch(ms []Morsel) (int, error) {
	if c.closed {
		return 0, c.x.errorf("recv", ErrClosed)
	}
	if len(ms) == 0 {
		return 0, nil
	}
	if c.x.oneToOne {
		if n := c.recvBatchFast(ms); n > 0 {
			return n, nil
		}
	}
	if !c.enter() {
		c.leave()
		return 0, c.x.errorf("recv", c.x.stopCause())
	}
	n := 0
	for n < len(ms) {
		k := c.q.popN(c.scratch[:min(len(c.scratch), len(ms)-n)])
		if k == 0 {
			break
		}
		for j, v := range c.scratch[:k] {
			ms[n+j] = c.accept(v)
		}
		n += k
	}
	if n == 0 {
		v, err := c.recvSlow()
		if err != nil {
			c.leave()
			return 0, err
		}
		ms[0] = c.accept(v)
		n = 1
	}
	c.q.notFull.signal()
	c.leave()
	storeRelease(&c.recvs, c.recvs+uint64(n))
	return n, nil
}

// Release hands a received morsel back; its handle and view are dead after.
// A broadcast morsel's segment is freed when its last consumer releases it.
// Release also works after the exchange or this end has closed.
func (c *Consumer) Release(m Morsel) error {
	if c.x.simple && c.releaseFast(m) {
		return nil
	}
	ci, err := c.check(m)
	if err != nil {
		return c.x.morselError("release", m, err)
	}
	if c.x.topo == Broadcast {
		if !clearBits(ci, m.gen(), c.bit) {
			return c.x.morselError("release", m, ErrReleased)
		}
	} else {
		storeRelease(&ci.word, uint64(m.gen()+1)<<genShift)
	}
	c.enter()
	c.free(m.index(), m.gen())
	c.leave()
	return nil
}

// ReleaseBatch releases every morsel in ms. If one is bad (or repeated) it
// returns that one's error and releases none.
func (c *Consumer) ReleaseBatch(ms []Morsel) error {
	if c.x.oneToOne && c.releaseBatchFast(ms) {
		return nil
	}
	for k, m := range ms {
		if err := c.claim(m); err != nil {
			for _, d := range ms[:k] {
				c.unclaim(d)
			}
			return c.x.morselError("release", m, err)
		}
	}
	c.enter()
	for _, m := range ms {
		if c.x.topo == Broadcast {
			ci := c.x.recs.cons(m.index())
			atomic.AndUint32(&ci.claims, ^uint32(c.bit))
			clearBits(ci, m.gen(), c.bit)
		}
		c.free(m.index(), m.gen())
	}
	c.leave()
	return nil
}

// check reports whether m is a live morsel this end may release.
func (c *Consumer) check(m Morsel) (*consInfo, error) {
	ci, err := c.x.lookupCons(m)
	if err != nil {
		return nil, err
	}
	if c.x.topo == Partitioned && int(ci.owner) != c.index {
		return nil, fmt.Errorf("received by consumer %d, released by consumer %d: %w", ci.owner, c.index, ErrWrongEnd)
	}
	// A broadcast morsel's handle is the same at every consumer: one that
	// has not received it yet must not clear its bit, or the others would
	// free the record while it is still in this consumer's queue.
	if c.x.topo == Broadcast && atomic.LoadUint32(&ci.got)&uint32(c.bit) == 0 {
		return nil, fmt.Errorf("not received by consumer %d: %w", c.index, ErrWrongEnd)
	}
	return ci, nil
}

// claim checks m and takes it for a batch release, so that a second claim
// of it fails: for a broadcast it sets this end's bit in the record's claims
// (its bit in the word stays until the release, so no other consumer frees
// the record meanwhile); otherwise it moves the generation on, which kills
// the handle. unclaim undoes it.
func (c *Consumer) claim(m Morsel) error {
	ci, err := c.check(m)
	if err != nil {
		return err
	}
	if c.x.topo != Broadcast {
		storeRelease(&ci.word, uint64(m.gen()+1)<<genShift)
		return nil
	}
	bit := uint32(c.bit)
	if atomic.LoadUint64(&ci.word)&c.bit == 0 || atomic.OrUint32(&ci.claims, bit)&bit != 0 {
		return ErrReleased
	}
	return nil
}

func (c *Consumer) unclaim(m Morsel) {
	ci := c.x.recs.cons(m.index())
	if c.x.topo == Broadcast {
		atomic.AndUint32(&ci.claims, ^uint32(c.bit))
		return
	}
	storeRelease(&ci.word, uint64(m.gen())<<genShift)
}

// free finishes this end's release of record i (consumer generation gen),
// whose handle it has killed (or whose broadcast bit it has cleared): the
// last owner counts its bytes and recycles it. Callers are busy.
func (c *Consumer) free(i, gen uint32) {
	x := c.x
	storeRelease(&c.held, c.held-1)
	storeRelease(&c.frees, c.frees+1)
	if x.topo == Broadcast && !finish(x.recs.cons(i), gen) {
		return // others still hold it
	}
	s := x.recs.seg(i)
	size := uint64(s.size)
	storeRelease(&c.released, c.released+size)
	if check.On {
		s.setState(stateFree)
		check.Fill(x.bytes(s, s.size))
	}
	if c.closed || x.isStopped() || atomic.LoadUint32(&x.ended) != 0 || !x.free.push(c.index, i, uint32(size)) {
		x.toPool(i)
	}
	x.space.signal()
	if x.topo == Partitioned {
		c.q.notFull.signal()
	}
}

// Close closes the consumer's end. With Partitioned or Broadcast, or when it
// is the last consumer of a Shared exchange, its queue closes: morsels still
// in it are released, and producers sending to it get ErrNoReader. Morsels
// it received stay its to Release.
func (c *Consumer) Close() error {
	if c.closed {
		return c.x.errorf("close consumer", ErrClosed)
	}
	c.closed = true
	if c.enter() {
		c.x.free.rings[c.index].flush() // from now on this end releases to the pool
	}
	c.leave()
	if !c.x.consumerClosed(c) {
		return nil
	}
	q := c.q
	atomic.StoreUint32(&q.closed, 1)
	fence()
	q.notFull.signalAll()
	c.x.space.signalAll()  // producers waiting for the budget may have no reader left
	c.x.quiesce(c.x.prods) // a producer that missed closed has pushed by now
	if !c.enter() {
		c.leave()
		return nil // stop sweeps the queue
	}
	for {
		v, ok := q.pop()
		if !ok {
			break
		}
		i, _ := unslot(v)
		ci := c.x.recs.cons(i)
		g := genOf(atomic.LoadUint64(&ci.word))
		storeRelease(&c.held, c.held+1)
		if c.x.topo == Broadcast {
			clearBits(ci, g, c.bit)
		} else {
			storeRelease(&ci.word, uint64(g+2)<<genShift) // as if received and released
		}
		c.free(i, g)
	}
	c.leave()
	return nil
}
