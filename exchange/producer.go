// The producer end: Reserve or Commit a morsel, Send it, Flush, Close.

package exchange

import (
	"cmp"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
)

// Producer is one producer's end of an exchange. It is not safe for
// concurrent use: each producer goroutine takes its own (Exchange.Producer).
//
// Invariants: busy is 1 exactly while an operation touches a queue, the free
// rings, the stash or the open morsels, and 0 while it parks; returned only
// grows; seen is at most the bytes that have left flight.
type Producer struct {
	_         [64]byte
	busy      uint32 // see Exchange, "Ends, closing and cancellation"
	closed    bool
	x         *Exchange
	index     int
	returned  uint64   // bytes of morsels Send admitted that this end disposed of; published
	seen      uint64   // the bytes that have left flight (every end's), as last summed, plus this end's since
	partSeen  []uint64 // per partition: its consumer's released bytes, as last read
	stash     []uint32 // free records with their segments: refilled from the free rings, or discarded here
	open      []uint32 // per queue: the open coalescing morsel's record, or noRecord
	scratch   []uint64 // slots of a batch
	held      uint64   // handles this end holds (wrapping); published
	sends     uint64   // morsels sent; published
	waits     uint64   // times parked; published
	freeNext  int      // the consumer whose free ring the next refill starts at
	credit    uint64   // several producers: budget leased and not yet spent (see lease); atomic
	sentBytes uint64   // several producers: bytes spent on sent morsels; published
	_         [64]byte
}

const noRecord = ^uint32(0)

// batchLen is how many morsels a batch moves through a queue at once.
const batchLen = 64

func newProducer(x *Exchange, i int) *Producer {
	p := &Producer{x: x, index: i, stash: make([]uint32, 0, stashLen), scratch: make([]uint64, 0, batchLen)}
	if x.topo == Partitioned {
		p.partSeen = make([]uint64, len(x.queues))
	}
	p.open = make([]uint32, len(x.queues))
	for i := range p.open {
		p.open[i] = noRecord
	}
	return p
}

// enter marks the end busy and reports whether the exchange is still open.
// A store then a load: stop's fence orders them against its own (see fence).
func (p *Producer) enter() bool {
	storeRelease32(&p.busy, 1)
	return atomic.LoadUint32(&p.x.stopped) == 0
}

func (p *Producer) leave() { storeRelease32(&p.busy, 0) }

// Reserve returns a new morsel of n bytes to fill in place (Morsel.Bytes)
// and then Send. The bytes are not zeroed. It does not wait for the budget:
// Send does.
func (p *Producer) Reserve(n int) (Morsel, error) {
	if p.x.simple && uint(n) <= maxMorsel && !p.closed {
		if m, ok := p.reserveFast(n); ok {
			return m, nil
		}
	}
	return p.reserve(n)
}

func (p *Producer) reserve(n int) (Morsel, error) {
	if n < 0 || n > maxMorsel {
		return Morsel{}, p.sizeError("reserve", n, fmt.Errorf("size out of range 0 to %d: %w", maxMorsel, ErrInvalid))
	}
	if p.closed {
		return Morsel{}, p.sizeError("reserve", n, ErrClosed)
	}
	if !p.enter() {
		p.leave()
		return Morsel{}, p.sizeError("reserve", n, p.x.stopCause())
	}
	i, err := p.take(classOf(n))
	p.leave()
	if err != nil {
		return Morsel{}, p.sizeError("reserve", n, err)
	}
	g := p.hold(i, uint32(n))
	storeRelease(&p.held, p.held+1)
	return p.x.handle(i, g, uint32(n)), nil
}

// hold makes free record i this end's, n bytes long, and returns the
// producer generation to hand out: the next even one, never handed out.
func (p *Producer) hold(i, n uint32) uint32 {
	pr := p.x.recs.prod(i)
	g := pr.gen + pr.gen&1
	storeRelease32(&pr.gen, g)
	pr.n = n
	if check.On {
		p.x.recs.seg(i).setState(stateHeld)
	}
	return g
}

// ReserveBatch fills ms with new morsels of n bytes each, as Reserve
// would. If it fails, it has reserved none.
func (p *Producer) ReserveBatch(ms []Morsel, n int) error {
	k := 0
	if p.x.oneToOne && uint(n) <= maxMorsel && !p.closed {
		k = p.reserveBatchFast(ms, n)
	}
	for ; k < len(ms); k++ {
		var err error
		if ms[k], err = p.reserve(n); err != nil {
			for _, m := range ms[:k] {
				p.unreserve(m)
			}
			return err
		}
	}
	return nil
}

// unreserve gives back a morsel that a failed ReserveBatch reserved, to the
// pool rather than the stash (as Discard would): the batch failed because
// the pool is full or the exchange stopped, and a failed call must not
// leave the pool fuller than it found it, with up to a stash of large
// segments kept back from other users of the pool.
func (p *Producer) unreserve(m Morsel) {
	p.kill(m.index())
	p.x.toPool(m.index())
	storeRelease(&p.held, p.held-1)
}

// Commit returns a new morsel holding a copy of data, to Send.
func (p *Producer) Commit(data []byte) (Morsel, error) {
	m, err := p.Reserve(len(data))
	if err == nil {
		copy(m.Bytes(), data)
	}
	return m, err
}

// Send hands m to the exchange's consumers (Shared or Broadcast; for
// Partitioned use SendTo). It blocks while the budget or the queue is full.
// From then on m is dead: the consumer that receives it owns it. If Send
// fails because the exchange stopped (ErrClosed, ErrCanceled) or no consumer
// is left (ErrNoReader), m has been released; for any other error nothing
// changed and m is still the producer's. That includes ErrClosed from an
// end the caller has closed itself (Close), which is bad input: the morsel
// is still its to Discard.
func (p *Producer) Send(m Morsel) error {
	if p.x.simple && p.sendFast(m) {
		return nil
	}
	if p.x.topo == Partitioned {
		return p.x.morselError("send", m, fmt.Errorf("a partitioned exchange needs SendTo: %w", ErrInvalid))
	}
	return p.send(0, m)
}

// SendTo is Send for a Partitioned exchange: m goes to partition part.
func (p *Producer) SendTo(part int, m Morsel) error {
	if err := p.checkPartition(part); err != nil {
		return p.x.morselError("send", m, err)
	}
	return p.send(part, m)
}

func (p *Producer) checkPartition(part int) error {
	switch {
	case p.x.topo != Partitioned:
		return fmt.Errorf("SendTo on a %v exchange: %w", p.x.topo, ErrInvalid)
	case part < 0 || part >= len(p.x.queues):
		return fmt.Errorf("partition %d of %d: %w", part, len(p.x.queues), ErrInvalid)
	}
	return nil
}

func (p *Producer) send(qi int, m Morsel) error {
	if p.closed {
		return p.x.morselError("send", m, ErrClosed)
	}
	pr, err := p.x.lookupProd(m)
	if err != nil {
		return p.x.morselError("send", m, err)
	}
	storeRelease32(&pr.gen, pr.gen+1) // the handle is dead from here on
	if p.enter() {
		err = p.route(qi, m.index())
	} else {
		p.dispose(m.index(), false)
		err = p.x.stopCause()
	}
	p.leave()
	storeRelease(&p.held, p.held-1)
	if err != nil {
		return p.x.morselError("send", m, err)
	}
	return nil
}

// SendBatch sends every morsel in ms, in order, as Send would, amortising
// the hand-off over the batch. If a morsel is bad it returns that one's error
// and sends none; if the exchange stops or loses its consumers midway, the
// morsels not yet sent are released. On a closed end it sends and
// releases none (ErrClosed).
func (p *Producer) SendBatch(ms []Morsel) error {
	if p.x.oneToOne && p.sendBatchFast(ms) {
		return nil
	}
	if p.x.topo == Partitioned {
		return p.x.errorf("send batch", fmt.Errorf("a partitioned exchange needs SendBatchTo: %w", ErrInvalid))
	}
	return p.sendBatch(0, ms)
}

// SendBatchTo is SendBatch for a Partitioned exchange: ms go to partition part.
func (p *Producer) SendBatchTo(part int, ms []Morsel) error {
	if err := p.checkPartition(part); err != nil {
		return p.x.errorf("send batch", err)
	}
	return p.sendBatch(part, ms)
}

func (p *Producer) sendBatch(qi int, ms []Morsel) error {
	if p.closed {
		return p.x.errorf("send batch", ErrClosed)
	}
	for k, m := range ms {
		pr, err := p.x.lookupProd(m)
		if err != nil {
			for _, d := range ms[:k] {
				pr := p.x.recs.prod(d.index())
				storeRelease32(&pr.gen, pr.gen-1)
			}
			return p.x.morselError("send", m, err)
		}
		storeRelease32(&pr.gen, pr.gen+1) // claimed: a repeat in ms fails now
	}
	var err error
	k := 0
	if p.enter() {
		if p.x.coalesce > 0 || p.x.topo == Broadcast {
			for ; k < len(ms) && err == nil; k++ {
				err = p.route(qi, ms[k].index())
			}
		} else {
			k, err = p.deliverBatch(qi, ms)
		}
	} else {
		err = p.x.stopCause()
	}
	for _, m := range ms[k:] {
		p.dispose(m.index(), false)
	}
	p.leave()
	storeRelease(&p.held, p.held-uint64(len(ms)))
	if err != nil {
		return p.x.errorf("send batch", err)
	}
	return nil
}

// deliverBatch is deliver for the records of ms, up to batchLen at a time
// through one push, for a Shared or Partitioned exchange without
// coalescing. It returns how many it took care of: on an error, those sent
// and those it disposed of. Callers are busy.
func (p *Producer) deliverBatch(qi int, ms []Morsel) (int, error) {
	q := p.x.queues[qi]
	for k := 0; k < len(ms); {
		slots := p.scratch[:0]
		for ; k < len(ms) && len(slots) < batchLen; k++ {
			i := ms[k].index()
			ok, partFull := p.admit(qi, uint64(p.x.recs.seg(i).size))
			if !ok {
				if len(slots) > 0 {
					break // send what is admitted, then wait
				}
				if err := p.waitBudget(qi, uint64(p.x.recs.seg(i).size), partFull); err != nil {
					return k, err
				}
				k--
				continue
			}
			if check.On {
				p.x.recs.seg(i).setState(stateQueued)
			}
			slots = append(slots, slotOf(i, p.x.recs.prod(i).n))
		}
		if err := p.pushAll(q, slots); err != nil {
			return k, err
		}
		storeRelease(&p.sends, p.sends+uint64(len(slots)))
	}
	return len(ms), nil
}

// pushAll pushes every slot to q, parking for room as needed. If q closes
// or the exchange stops, the slots not pushed are disposed of. Callers are
// busy.
func (p *Producer) pushAll(q *queue, slots []uint64) error {
	for len(slots) > 0 {
		var err error
		if q.isClosed() {
			err = ErrNoReader
		} else if n := q.pushN(slots); n > 0 {
			slots = slots[n:]
			q.notEmpty.signal()
			continue
		} else {
			err = p.waitRoom(q)
		}
		if err != nil {
			for _, v := range slots {
				i, _ := unslot(v)
				p.dispose(i, true)
			}
			return err
		}
	}
	return nil
}

// route sends held record i to queue qi: a short one through the open
// coalescing morsel, a long one after that morsel, to keep the order.
// Callers are busy.
func (p *Producer) route(qi int, i uint32) error {
	if p.x.coalesce > 0 {
		if n := p.x.recs.prod(i).n; n < p.x.coalesce {
			return p.coalesceInto(qi, i, n)
		}
		if o := p.open[qi]; o != noRecord {
			p.open[qi] = noRecord
			if err := p.deliver(qi, o); err != nil {
				p.dispose(i, false)
				return err
			}
		}
	}
	return p.deliver(qi, i)
}

// deliver admits record i, which this end holds (its handle already dead),
// against the budgets and pushes it to queue qi (every open consumer's, for
// a broadcast). On an error the record has been disposed of. Callers are busy.
func (p *Producer) deliver(qi int, i uint32) error {
	size := uint64(p.x.recs.seg(i).size)
	for {
		ok, partFull := p.admit(qi, size)
		if ok {
			break
		}
		if err := p.waitBudget(qi, size, partFull); err != nil {
			p.dispose(i, false)
			return err
		}
	}
	pr := p.x.recs.prod(i)
	if check.On {
		s := p.x.recs.seg(i)
		check.Invariant(s.getState() == stateHeld, "send of record %d in state %d", i, s.getState())
		s.setState(stateQueued)
	}
	if p.x.topo == Broadcast {
		return p.broadcast(i, pr.n)
	}
	q := p.x.queues[qi]
	for {
		if q.isClosed() {
			p.dispose(i, true)
			return ErrNoReader
		}
		if q.push(slotOf(i, pr.n)) {
			break
		}
		if err := p.waitRoom(q); err != nil {
			p.dispose(i, true)
			return err
		}
	}
	q.notEmpty.signal()
	storeRelease(&p.sends, p.sends+1)
	return nil
}

// broadcast pushes record i, n bytes long, to every open consumer's queue.
// Its consumer word's low bits name the consumers yet to release it; a
// queue found closed has its bit cleared here, as its consumer would on
// release.
func (p *Producer) broadcast(i, n uint32) error {
	x := p.x
	var mask uint64
	for c, q := range x.queues {
		if !q.isClosed() {
			mask |= 1 << c
		}
	}
	if mask == 0 {
		p.dispose(i, true)
		return ErrNoReader
	}
	ci := x.recs.cons(i)
	gen := genOf(atomic.LoadUint64(&ci.word)) + 1 // a consumer's failed finish may still be reading it
	atomic.StoreUint32(&ci.got, 0)                // every receiver of the last generation has released it
	storeRelease(&ci.word, uint64(gen)<<genShift|mask)
	for c, q := range x.queues {
		if mask&(1<<c) == 0 {
			continue
		}
		pushed := false
		for !pushed && !q.isClosed() {
			if pushed = q.push(slotOf(i, n)); !pushed {
				if err := p.waitRoom(q); err != nil {
					p.dropBits(i, gen, mask)
					return err
				}
			}
		}
		// A queue that closes after the push is drained by its consumer's
		// Close, which waits for this end and clears the bit itself:
		// clearing it here too could free the record twice.
		if pushed {
			q.notEmpty.signal()
		} else {
			p.dropBits(i, gen, 1<<c)
		}
		mask &^= 1 << c
	}
	storeRelease(&p.sends, p.sends+1)
	return nil
}

// dropBits clears bits of broadcast record i (consumer generation gen) for
// consumers that will never see it; whoever clears the last returns it.
func (p *Producer) dropBits(i, gen uint32, bits uint64) {
	ci := p.x.recs.cons(i)
	if clearBits(ci, gen, bits) && finish(ci, gen) {
		p.addReturned(uint64(p.x.recs.seg(i).size))
		p.x.toPool(i)
	}
}

// waitRoom parks until queue q has a free slot, is closed, or the exchange
// stops; it returns an error only for the stop. Callers are busy.
func (p *Producer) waitRoom(q *queue) error {
	p.returnCredit()
	p.leave()
	storeRelease(&p.waits, p.waits+1)
	q.notFull.wait(func() bool { return q.room() || q.isClosed() || p.x.isStopped() }, p.x.stopCh, nil)
	if !p.enter() {
		return p.x.stopCause()
	}
	return nil
}

// waitBudget parks until size bytes may fit the budget (partFull: queue qi's
// partition budget), no consumer is left, or the exchange stops. Callers
// are busy.
func (p *Producer) waitBudget(qi int, size uint64, partFull bool) error {
	ev, ready := &p.x.space, func() bool { return p.x.isStopped() || p.globalRoom(size) || p.noReader(qi) }
	if partFull {
		q := p.x.queues[qi]
		ev, ready = &q.notFull, func() bool { return p.x.isStopped() || q.isClosed() || p.partRoom(qi, size) }
	}
	p.returnCredit()
	p.leave()
	storeRelease(&p.waits, p.waits+1)
	ev.wait(ready, p.x.stopCh, nil)
	if !p.enter() {
		return p.x.stopCause()
	}
	if p.noReader(qi) {
		return ErrNoReader
	}
	return nil
}

// noReader reports whether a morsel sent to queue qi would find no
// consumer: its queue is closed, or for a broadcast every queue.
func (p *Producer) noReader(qi int) bool {
	if p.x.topo != Broadcast {
		return p.x.queues[qi].isClosed()
	}
	for _, q := range p.x.queues {
		if !q.isClosed() {
			return false
		}
	}
	return true
}

// Flush sends the producer's open coalescing morsels now, so a trickle of
// short morsels is not held back waiting for more. Without Coalesce it does
// nothing.
func (p *Producer) Flush() error {
	if p.closed {
		return p.x.errorf("flush", ErrClosed)
	}
	var err error
	if p.enter() {
		err = p.flush()
	} else {
		err = p.x.stopCause()
	}
	p.leave()
	if err != nil {
		return p.x.errorf("flush", err)
	}
	return nil
}

// flush delivers every open morsel and returns the first error. A partition
// that lost its reader does not hold back the others' morsels; a stop ends
// the loop, since the open morsels are then stop's to sweep.
func (p *Producer) flush() error {
	var first error
	for qi, i := range p.open {
		if i == noRecord {
			continue
		}
		p.open[qi] = noRecord
		if err := p.deliver(qi, i); err != nil {
			if !errors.Is(err, ErrNoReader) {
				return err
			}
			first = cmp.Or(first, err)
		}
	}
	return first
}

// coalesceInto copies short held record i (n bytes) into queue qi's open
// morsel, sending that first if i would not fit and after if it is full,
// and keeps i's segment for reuse. If no segment can be had for a new open
// morsel (the pool is full), i is sent alone: Send fails only for a stop
// or a lost reader. Callers are busy.
func (p *Producer) coalesceInto(qi int, i, n uint32) error {
	x := p.x
	o := p.open[qi]
	if o != noRecord && x.recs.prod(o).n+n > x.coalesce {
		p.open[qi] = noRecord
		if err := p.deliver(qi, o); err != nil {
			p.dispose(i, false)
			return err
		}
		o = noRecord
	}
	if o == noRecord {
		var err error
		if o, err = p.take(classOf(int(x.coalesce))); err != nil {
			return p.deliver(qi, i) // no segment to coalesce into (the pool is full): i goes alone, in order
		}
		p.hold(o, 0)
		p.open[qi] = o
	}
	op := x.recs.prod(o)
	copy(x.bytes(x.recs.seg(o), op.n+n)[op.n:], x.bytes(x.recs.seg(i), n))
	op.n += n
	p.recycle(i) // its bytes are sent: a use of its handle is still ErrSent
	if op.n == x.coalesce {
		p.open[qi] = noRecord
		return p.deliver(qi, o)
	}
	return nil
}

// Discard releases a morsel the producer reserved and will not send.
func (p *Producer) Discard(m Morsel) error {
	if _, err := p.x.lookupProd(m); err != nil {
		return p.x.morselError("discard", m, err)
	}
	p.enter()
	p.dispose(m.index(), false)
	p.leave()
	storeRelease(&p.held, p.held-1)
	return nil
}

// dispose frees record i, which this end holds, moving its producer
// generation on to an even one never handed out (so the producer's handle,
// or the one Send already killed, is dead); admitted says whether Send
// counted it against the budget. Kept in the stash if there is room and the
// exchange is open, else its segment goes back to the pool. Callers are busy
// (or the exchange is stopped).
func (p *Producer) dispose(i uint32, admitted bool) {
	p.kill(i)
	if admitted {
		p.addReturned(uint64(p.x.recs.seg(i).size))
	}
	p.recycle(i)
}

// kill moves record i's producer generation on to an even one never
// handed out, so every handle to it, live or already sent, is dead.
func (p *Producer) kill(i uint32) {
	pr := p.x.recs.prod(i)
	storeRelease32(&pr.gen, pr.gen+1+(pr.gen+1)&1)
}

// recycle frees record i, whose handle is dead, as dispose does but
// leaving its producer generation alone. Callers are busy (or the exchange
// is stopped).
func (p *Producer) recycle(i uint32) {
	s := p.x.recs.seg(i)
	if check.On {
		s.setState(stateFree)
		check.Fill(p.x.bytes(s, s.size))
	}
	// Once stopped, stop owns the stash. A record kept here is at most a
	// stash's share of the budget, so Discards keep at most a budget's worth
	// (refills come from the free rings, which hold at most half of it): the
	// segments of large discarded morsels go back to the pool, for the other
	// users of a shared one.
	if !p.x.isStopped() && !p.closed && len(p.stash) < cap(p.stash) && uint64(s.size) <= p.x.budget/stashLen {
		p.stash = append(p.stash, i)
		return
	}
	p.x.toPool(i)
}

// take returns a free record with a segment of class c: from the stash,
// which it refills from the free rings a batch at a time (so a free ring's
// cursor line crosses between CPUs once a batch), or from the pool. A record
// whose segment does not fit goes back to the pool. Callers are busy.
func (p *Producer) take(c uint32) (uint32, error) {
	x := p.x
	for {
		k := len(p.stash)
		if k == 0 && !p.refill() {
			return p.fresh(c)
		}
		k = len(p.stash)
		i := p.stash[k-1]
		p.stash = p.stash[:k-1]
		if fits(x.recs.seg(i).size, c) {
			return i, nil
		}
		x.toPool(i)
	}
}

// refillLen is how many records a producer takes from the free rings at once.
const refillLen = 64

// refill moves up to refillLen records from the free rings to
// the empty stash; false if the rings are empty.
func (p *Producer) refill() bool {
	var buf [refillLen]uint64
	n := p.x.free.popN(&p.freeNext, buf[:])
	for _, v := range buf[:n] {
		i, _ := unslot(v)
		p.stash = append(p.stash, i)
	}
	return n > 0
}

// drainFree gives every segment in the free rings back to the
// pool and reports whether there was any. Callers are busy.
func (p *Producer) drainFree() bool {
	any := false
	p.x.free.drain(func(i uint32) {
		any = true
		p.x.toPool(i)
	})
	return any
}

// addReturned counts n bytes of admitted morsels this end disposed of (they
// left flight without a consumer), and wakes a producer waiting for the
// budget.
func (p *Producer) addReturned(n uint64) {
	storeRelease(&p.returned, p.returned+n)
	p.seen += n
	if p.x.multiP {
		p.x.space.signal()
	}
}

// Close flushes the producer's open coalescing morsels and closes its end;
// once every producer has closed, consumers drain the queues and then get
// io.EOF. Morsels the producer reserved and did not send stay its to Discard.
func (p *Producer) Close() error {
	if p.closed {
		return p.x.errorf("close producer", ErrClosed)
	}
	var err error
	if p.enter() {
		err = p.flush()
		if !p.x.isStopped() { // else flush parked and a stop swept the stash meanwhile
			for _, i := range p.stash {
				p.x.toPool(i)
			}
			p.stash = p.stash[:0]
		}
	}
	p.closed = true
	p.returnCredit()
	// Counted closed only now, after the flush: the end of the stream must
	// follow every producer's last morsel, even one still flushing.
	if p.x.producerClosed() {
		p.x.end() // consumers now release to the pool
		if !p.x.isStopped() {
			p.drainFree() // nobody will reuse them
		}
	}
	p.leave()
	if err != nil {
		return p.x.errorf("close producer", err)
	}
	return nil
}

func (p *Producer) sizeError(op string, n int, err error) error {
	return p.x.errorf(fmt.Sprintf("%s %d bytes", op, n), err)
}
