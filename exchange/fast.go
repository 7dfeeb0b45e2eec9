// The 1:1 fast paths: Reserve, Send, Recv and Release of a Shared exchange
// with one producer and one consumer, in the steady state. Each does what
// its general path does, in one function; anything out of the ordinary
// (an empty stash, a full queue or budget, a bad handle, a stopped
// exchange) falls through to the general path, having changed nothing.

package exchange

import "sync/atomic"

// reserveFast takes a record from the stash (refilled from the free ring)
// whose segment fits n bytes.
func (p *Producer) reserveFast(n int) (Morsel, bool) {
	x := p.x
	var m Morsel
	ok := false
	if p.enter() && (len(p.stash) > 0 || p.refill()) {
		k := len(p.stash)
		i := p.stash[k-1]
		c, j := x.recs.chunkOf(i), i&(chunkLen-1)
		if s := &c.seg[j]; fits(s.size, classOf(n)) {
			p.stash = p.stash[:k-1]
			pr := &c.prod[j]
			g := pr.gen + pr.gen&1
			storeRelease32(&pr.gen, g)
			pr.n = uint32(n)
			m = Morsel{p: x.view(s), n: uint32(n), x: x.id, ref: uint64(g)<<genShift | uint64(i)}
			ok = true
		}
	}
	p.leave()
	if ok {
		storeRelease(&p.held, p.held+1)
	}
	return m, ok
}

// sendFast pushes a live handle's record to the queue if the budget and
// the queue have room.
func (p *Producer) sendFast(m Morsel) bool {
	x := p.x
	i, g := m.index(), m.gen()
	if m.x != x.id || i >= x.recs.n.Load() || g&1 != 0 || p.closed {
		return false
	}
	c, j := x.recs.chunkOf(i), i&(chunkLen-1)
	pr := &c.prod[j]
	size := uint64(c.seg[j].size)
	if used := x.sent - p.seen; pr.gen != g || used != 0 && used+size > x.budget {
		return false
	}
	q := x.queues[0]
	ok := false
	if p.enter() && !q.isClosed() && q.one.push(slotOf(i, pr.n)) {
		// The only producer: the handle may die just after the push.
		storeRelease32(&pr.gen, g+1)
		storeRelease(&x.sent, x.sent+size)
		ok = true
	}
	p.leave()
	if ok {
		q.notEmpty.signal()
		storeRelease(&p.sends, p.sends+1)
		storeRelease(&p.held, p.held-1)
	}
	return ok
}

// recvFast pops a slot if the queue has one.
func (c *Consumer) recvFast() (Morsel, bool) {
	x := c.x
	var m Morsel
	ok := false
	if c.enter() {
		if v, popped := c.q.one.pop(); popped {
			i, n := unslot(v)
			ch, j := x.recs.chunkOf(i), i&(chunkLen-1)
			ci := &ch.cons[j]
			g := genOf(ci.word) + 1
			storeRelease(&ci.word, uint64(g)<<genShift)
			m = Morsel{p: x.view(&ch.seg[j]), n: n, x: x.id, ref: uint64(g)<<genShift | uint64(i)}
			ok = true
		}
	}
	c.leave()
	if ok {
		c.q.notFull.signal()
		storeRelease(&c.held, c.held+1)
		storeRelease(&c.recvs, c.recvs+1)
	}
	return m, ok
}

// releaseFast kills a live handle and pushes its record to the free ring;
// if the ring is full or the producers have ended, free finishes the
// release through the pool.
func (c *Consumer) releaseFast(m Morsel) bool {
	x := c.x
	i, g := m.index(), m.gen()
	if m.x != x.id || i >= x.recs.n.Load() || g&1 == 0 {
		return false
	}
	ch, j := x.recs.chunkOf(i), i&(chunkLen-1)
	ci := &ch.cons[j]
	if genOf(ci.word) != g {
		return false
	}
	storeRelease(&ci.word, uint64(g+1)<<genShift) // the handle is dead from here on
	size := uint64(ch.seg[j].size)                // before the push: then the record is the producer's
	if c.enter() && !c.closed && atomic.LoadUint32(&x.ended) == 0 && x.free.one.push(slotOf(i, 0)) {
		storeRelease(&c.released, c.released+size)
		c.leave()
		storeRelease(&c.held, c.held-1)
		storeRelease(&c.frees, c.frees+1)
		x.space.signal()
		return true
	}
	c.free(i, g)
	c.leave()
	return true
}
