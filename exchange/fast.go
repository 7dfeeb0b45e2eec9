// The fast paths: Reserve, Send, Recv and Release of a Shared exchange
// without coalescing (the batch calls with one producer and one consumer),
// in the steady state. Each does what its general path does, in one
// function; anything out of the ordinary (an empty stash, a full queue or
// budget, a bad handle, a stopped exchange) falls through to the general
// path, having changed nothing.

package exchange

import "sync/atomic"

// reserveFast takes a record from the stash (refilled from the free rings)
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
	if pr.gen != g {
		return false
	}
	q := x.queues[0]
	ok := false
	if p.enter() && !q.isClosed() {
		if !x.multiP {
			if used := x.sent - p.seen; used == 0 || used+size <= x.budget {
				if ok = q.push(slotOf(i, pr.n)); ok {
					// The only producer: the handle may die just after the push.
					storeRelease32(&pr.gen, g+1)
					storeRelease(&x.sent, x.sent+size)
				}
			}
		} else if c := atomic.LoadUint64(&p.credit); c >= size && atomic.CompareAndSwapUint64(&p.credit, c, c-size) {
			// The credit is claimed before the push: a waiting producer may reclaim the rest.
			storeRelease32(&pr.gen, g+1) // before the push: another producer may reuse the record at once
			if ok = q.push(slotOf(i, pr.n)); ok {
				storeRelease(&p.sentBytes, p.sentBytes+size)
			} else {
				storeRelease32(&pr.gen, g)
				atomic.AddUint64(&p.credit, size)
			}
		}
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
		var v uint64
		if c.q.one != nil {
			v, ok = c.q.one.pop()
		} else {
			v, ok = c.q.many.pop()
		}
		if ok {
			i, n := unslot(v)
			ch, j := x.recs.chunkOf(i), i&(chunkLen-1)
			ci := &ch.cons[j]
			g := genOf(ci.word) + 1
			storeRelease(&ci.word, uint64(g)<<genShift)
			m = Morsel{p: x.view(&ch.seg[j]), n: n, x: x.id, ref: uint64(g)<<genShift | uint64(i)}
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

// releaseFast kills a live handle and pushes its record to its free ring;
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
	if c.enter() && !c.closed && atomic.LoadUint32(&x.ended) == 0 && x.free.rings[c.index].push(i, uint32(size)) {
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

// reserveBatchFast fills ms with morsels of n bytes from the stash,
// refilling it from the free rings; it returns how many it filled.
func (p *Producer) reserveBatchFast(ms []Morsel, n int) int {
	x := p.x
	c := classOf(n)
	k := 0
	if p.enter() {
		for k < len(ms) && (len(p.stash) > 0 || p.refill()) {
			top := len(p.stash) - 1
			i := p.stash[top]
			ch, j := x.recs.chunkOf(i), i&(chunkLen-1)
			s := &ch.seg[j]
			if !fits(s.size, c) {
				break
			}
			p.stash = p.stash[:top]
			pr := &ch.prod[j]
			g := pr.gen + pr.gen&1
			storeRelease32(&pr.gen, g)
			pr.n = uint32(n)
			ms[k] = Morsel{p: x.view(s), n: uint32(n), x: x.id, ref: uint64(g)<<genShift | uint64(i)}
			k++
		}
	}
	p.leave()
	storeRelease(&p.held, p.held+uint64(k))
	return k
}

// sendBatchFast sends all of ms if every handle in it is live and the
// budget and the queue have room for all of it; false having changed
// nothing otherwise.
func (p *Producer) sendBatchFast(ms []Morsel) bool {
	x := p.x
	if p.closed {
		return false
	}
	var size uint64
	for k, m := range ms {
		i, g := m.index(), m.gen()
		ok := m.x == x.id && i < x.recs.n.Load() && g&1 == 0
		var ch *chunk
		if ok {
			ch = x.recs.chunkOf(i)
			ok = ch.prod[i&(chunkLen-1)].gen == g
		}
		if !ok {
			p.unclaim(ms[:k])
			return false
		}
		j := i & (chunkLen - 1)
		storeRelease32(&ch.prod[j].gen, g+1) // claimed: a repeat in ms fails now
		size += uint64(ch.seg[j].size)
		if k < batchLen {
			p.scratch = append(p.scratch[:k], slotOf(i, m.n))
		}
	}
	q := x.queues[0]
	// Only a morsel alone may go over the budget: a batch that does not fit
	// goes through the general path, which admits its morsels one by one.
	used := x.sent - p.seen
	ok := used+size <= x.budget || used == 0 && len(ms) == 1
	if ok = ok && p.enter() && !q.isClosed() && q.one.spaceFor(len(ms)); ok {
		q.one.pushN(p.scratch[:min(len(ms), batchLen)])
		for off := batchLen; off < len(ms); off += batchLen {
			slots := p.scratch[:0]
			for _, m := range ms[off:min(len(ms), off+batchLen)] {
				slots = append(slots, slotOf(m.index(), m.n))
			}
			q.one.pushN(slots)
		}
		storeRelease(&x.sent, x.sent+size)
	}
	p.leave()
	if !ok {
		p.unclaim(ms)
		return false
	}
	q.notEmpty.signal()
	storeRelease(&p.sends, p.sends+uint64(len(ms)))
	storeRelease(&p.held, p.held-uint64(len(ms)))
	return true
}

// unclaim gives back the handles sendBatchFast claimed.
func (p *Producer) unclaim(ms []Morsel) {
	for _, m := range ms {
		storeRelease32(&p.x.recs.prod(m.index()).gen, m.gen())
	}
}

// recvBatchFast pops up to len(ms) slots, at most batchLen, into ms.
func (c *Consumer) recvBatchFast(ms []Morsel) int {
	x := c.x
	n := 0
	if c.enter() {
		n = c.q.one.popN(c.scratch[:min(len(ms), len(c.scratch))])
		for k, v := range c.scratch[:n] {
			i, size := unslot(v)
			ch, j := x.recs.chunkOf(i), i&(chunkLen-1)
			ci := &ch.cons[j]
			g := genOf(ci.word) + 1
			storeRelease(&ci.word, uint64(g)<<genShift)
			ms[k] = Morsel{p: x.view(&ch.seg[j]), n: size, x: x.id, ref: uint64(g)<<genShift | uint64(i)}
		}
	}
	c.leave()
	if n > 0 {
		c.q.notFull.signal()
		storeRelease(&c.held, c.held+uint64(n))
		storeRelease(&c.recvs, c.recvs+uint64(n))
	}
	return n
}

// releaseBatchFast releases all of ms, through its free ring (the pool
// for what does not fit), if every handle in it is live; false having
// changed nothing otherwise.
func (c *Consumer) releaseBatchFast(ms []Morsel) bool {
	x := c.x
	var size uint64
	for k, m := range ms {
		i, g := m.index(), m.gen()
		ok := m.x == x.id && i < x.recs.n.Load() && g&1 != 0
		var ch *chunk
		if ok {
			ch = x.recs.chunkOf(i)
			ok = genOf(ch.cons[i&(chunkLen-1)].word) == g
		}
		if !ok {
			for _, d := range ms[:k] {
				storeRelease(&x.recs.cons(d.index()).word, uint64(d.gen())<<genShift)
			}
			return false
		}
		j := i & (chunkLen - 1)
		storeRelease(&ch.cons[j].word, uint64(g+1)<<genShift) // claimed: dead, and a repeat fails
		size += uint64(ch.seg[j].size)
		if k < batchLen {
			c.scratch[k] = slotOf(i, ch.seg[j].size)
		}
	}
	pushed := 0
	open := c.enter() && !c.closed && atomic.LoadUint32(&x.ended) == 0
	for off := 0; open && off < len(ms); off += batchLen {
		slots := c.scratch[:min(len(ms)-off, batchLen)]
		if off > 0 {
			for k, m := range ms[off : off+len(slots)] {
				slots[k] = slotOf(m.index(), x.recs.seg(m.index()).size)
			}
		}
		k := x.free.rings[0].pushN(slots)
		pushed += k
		open = k == len(slots)
	}
	for _, m := range ms[pushed:] {
		size -= uint64(x.recs.seg(m.index()).size)
		c.free(m.index(), m.gen())
	}
	storeRelease(&c.released, c.released+size)
	c.leave()
	storeRelease(&c.held, c.held-uint64(pushed))
	storeRelease(&c.frees, c.frees+uint64(pushed))
	x.space.signal()
	return true
}
