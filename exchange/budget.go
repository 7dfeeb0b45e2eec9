// The byte budgets: admitting a morsel, and checking for room while parked.

package exchange

import (
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
)

// admit counts size bytes against the exchange's budget and, for a
// partitioned exchange, queue qi's partition budget. It fails if either is
// reached even after refreshing the cached sums; partFull then says which.
// A morsel alone is always admitted, so what is held never exceeds a budget
// by more than one morsel.
func (p *Producer) admit(qi int, size uint64) (ok, partFull bool) {
	x := p.x
	if !x.multiP {
		if !p.fitsBudget(x.sent, size) {
			return false, false
		}
		if x.topo == Partitioned {
			q := x.queues[qi]
			if !p.fitsPartition(qi, q.sent, size) {
				return false, true
			}
			storeRelease(&q.sent, q.sent+size)
			if check.On {
				inq := q.sent - p.partSeen[qi]
				check.Invariant(inq <= max(x.partCap, size), "partition %d holds %d bytes; budget %d, morsel %d", qi, inq, x.partCap, size)
			}
		}
		storeRelease(&x.sent, x.sent+size)
		p.checkHeld(x.sent-p.seen, size)
		return true, false
	}
	if !p.spend(size) {
		return false, false
	}
	if x.topo == Partitioned {
		q := x.queues[qi]
		fits := func(s uint64) bool { return fitsLimit(s-p.partSeen[qi], size, x.partCap) }
		refresh := func() { p.partSeen[qi] = atomic.LoadUint64(&x.cons[qi].released) }
		if !tryAdd(&q.sent, size, fits, refresh, &q.notFull) {
			p.unspend(size)
			return false, true
		}
	}
	return true, false
}

// With several producers, Exchange.sent counts the budget leased to them:
// a producer takes credit in chunks with one atomic add (lease) and spends
// it on its morsels without touching any shared line (spend), so the
// producers do not contend on a counter per morsel. What is in flight is at
// most what is leased, which admission keeps within the budget; a producer
// hands back its unused credit (returnCredit) before it parks and when it
// closes, and a producer waiting for the budget takes back the others'
// (reclaimCredit), so credit never idles while another producer waits for
// it, even at a producer that has stopped sending. Credit is therefore an
// atomic that its owner spends with a CAS.

// spend counts size bytes sent from the producer's credit, leasing more if
// it has too little; false if the budget has no room.
func (p *Producer) spend(size uint64) bool {
	for {
		c := atomic.LoadUint64(&p.credit)
		if c < size {
			if !p.lease(size - c) {
				return p.spendAlone(size)
			}
			continue // reclaimCredit may have taken it meanwhile
		}
		if atomic.CompareAndSwapUint64(&p.credit, c, c-size) {
			storeRelease(&p.sentBytes, p.sentBytes+size)
			return true
		}
	}
}

// spendAlone spends size bytes over the budget if nothing at all is in
// flight: a morsel alone is always let through. The check and the spend
// are one step under Exchange.alone: otherwise several producers could
// each find nothing in flight and each send a morsel alone.
func (p *Producer) spendAlone(size uint64) bool {
	x := p.x
	x.alone.Lock()
	defer x.alone.Unlock()
	if x.inFlight() != 0 {
		return false
	}
	atomic.AddUint64(&x.sent, size-atomic.SwapUint64(&p.credit, 0))
	storeRelease(&p.sentBytes, p.sentBytes+size)
	return true
}

// unspend takes back a spend whose morsel was not sent after all.
func (p *Producer) unspend(size uint64) {
	atomic.AddUint64(&p.credit, size)
	storeRelease(&p.sentBytes, p.sentBytes-size)
}

// lease adds at least need bytes to the producer's credit: a chunk if the
// budget has room for one, else need if it has room for that. A lease
// never goes over the budget, even when nothing is held (spendAlone is the
// one way over it), so all the credit leased and unspent is at most the
// budget.
func (p *Producer) lease(need uint64) bool {
	x := p.x
	l := max(need, x.chunk)
	fits := func(s uint64) bool { return s-p.seen+l <= x.budget }
	if !tryAdd(&x.sent, l, fits, p.refresh, &x.space) {
		l = need
		if !tryAdd(&x.sent, l, fits, p.refresh, &x.space) {
			return false
		}
	}
	atomic.AddUint64(&p.credit, l)
	return true
}

// returnCredit hands the producer's unused credit back to the budget.
func (p *Producer) returnCredit() {
	if p.x.dropCredit(p) {
		p.x.space.signal()
	}
}

// dropCredit hands producer o's unspent credit back to the budget and
// reports whether it had any.
func (x *Exchange) dropCredit(o *Producer) bool {
	if atomic.LoadUint64(&o.credit) == 0 {
		return false
	}
	atomic.AddUint64(&x.sent, -atomic.SwapUint64(&o.credit, 0))
	return true
}

// reclaimCredit takes back the credit every other producer leased and has
// not spent, for producer p, which waits for the budget: one that leased a
// chunk and then stopped sending would otherwise hold it for good, and p
// could wait for room the budget has.
func (p *Producer) reclaimCredit() {
	for _, o := range p.x.prods {
		if o != p {
			p.x.dropCredit(o)
		}
	}
}

// tryAdd adds size to the shared counter *sent, and keeps it if fits
// allows the value before it; otherwise it takes it back and signals ev,
// on which a producer that saw the bytes for a moment may be waiting. If
// fits refuses, tryAdd refreshes the released sum fits subtracts and adds
// once more. The sum is always read before the add it is judged with: every
// byte it counts as released was added before, so the bytes held are never
// underestimated (a sum read after the add could count the release of bytes
// added after it). An atomic add never retries, unlike a CAS loop; the value
// fits judges includes other producers' tentative adds, so it errs on the
// safe side.
func tryAdd(sent *uint64, size uint64, fits func(uint64) bool, refresh func(), ev *event) bool {
	for try := 0; ; try++ {
		if fits(atomic.AddUint64(sent, size) - size) {
			return true
		}
		atomic.AddUint64(sent, -size)
		ev.signal()
		if try == 1 {
			return false
		}
		refresh()
	}
}

// fitsBudget reports whether size more bytes fit the exchange's budget
// when sent bytes have been admitted, refreshing the released sum if the
// cached one says no.
func (p *Producer) fitsBudget(sent, size uint64) bool {
	if fitsLimit(sent-p.seen, size, p.x.budget) {
		return true
	}
	p.refresh()
	return fitsLimit(sent-p.seen, size, p.x.budget)
}

// fitsPartition is fitsBudget for partition qi, whose consumer counts the
// bytes it released.
func (p *Producer) fitsPartition(qi int, sent, size uint64) bool {
	if fitsLimit(sent-p.partSeen[qi], size, p.x.partCap) {
		return true
	}
	p.partSeen[qi] = atomic.LoadUint64(&p.x.cons[qi].released)
	return fitsLimit(sent-p.partSeen[qi], size, p.x.partCap)
}

// fitsLimit reports whether size more bytes fit next to held under limit:
// they do if the total stays within it, or if nothing is held.
func fitsLimit(held, size, limit uint64) bool { return held == 0 || held+size <= limit }

// refresh sums the bytes that have left flight: released by consumers, or
// disposed of by producers after Send admitted them.
func (p *Producer) refresh() {
	x := p.x
	var n uint64
	for _, o := range x.prods {
		n += atomic.LoadUint64(&o.returned)
	}
	for _, c := range x.cons {
		n += atomic.LoadUint64(&c.released)
	}
	p.seen = n
}

// globalRoom reports, for a parked producer, whether size bytes would now fit the budget.
func (p *Producer) globalRoom(size uint64) bool {
	if p.x.multiP {
		p.reclaimCredit()
	}
	return p.fitsBudget(atomic.LoadUint64(&p.x.sent), size) || p.x.multiP && p.x.inFlight() == 0
}

// partRoom reports, for a parked producer, whether size bytes would now fit partition qi.
func (p *Producer) partRoom(qi int, size uint64) bool {
	return p.fitsPartition(qi, atomic.LoadUint64(&p.x.queues[qi].sent), size)
}

// checkHeld verifies, in the checked build, that the bytes held are within
// the budget plus the morsel just admitted.
func (p *Producer) checkHeld(held, size uint64) {
	if check.On {
		check.Invariant(held <= max(p.x.budget, size), "exchange holds %d bytes; budget %d, morsel %d", held, p.x.budget, size)
	}
}

// inFlight returns the bytes sent and not yet released, from every end's
// counters: with several producers, what they have spent, not leased. The
// bytes that left flight are summed before and after the bytes sent, and
// the sums retried until the two agree, so the figure is one the exchange
// held while it was read: never an underestimate that counts a release
// but not its send (which would let spendAlone send a second morsel
// alone), and never an overestimate that counts sends but not the releases
// that made room for them (Stats.Held). After a few disagreements it
// gives the overestimate, the safe side for admission.
func (x *Exchange) inFlight() uint64 {
	for try := 0; ; try++ {
		left := x.leftFlight()
		var n uint64
		if x.multiP {
			for _, p := range x.prods {
				n += atomic.LoadUint64(&p.sentBytes)
			}
		} else {
			n = atomic.LoadUint64(&x.sent)
		}
		if try == 3 || x.leftFlight() == left {
			return n - left
		}
	}
}

// leftFlight sums the bytes that have left flight: returned by producers,
// released by consumers, swept by stop.
func (x *Exchange) leftFlight() uint64 {
	n := atomic.LoadUint64(&x.swept)
	for _, p := range x.prods {
		n += atomic.LoadUint64(&p.returned)
	}
	for _, c := range x.cons {
		n += atomic.LoadUint64(&c.released)
	}
	return n
}
