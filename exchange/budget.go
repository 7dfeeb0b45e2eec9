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
		if !tryAdd(&q.sent, size, func(s uint64) bool { return p.fitsPartition(qi, s, size) }, &q.notFull) {
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
// closes, so credit never idles while another producer waits for it.

// spend counts size bytes sent from the producer's credit, leasing more if
// it has too little; false if the budget has no room.
func (p *Producer) spend(size uint64) bool {
	if p.credit < size && !p.lease(size-p.credit) {
		return false
	}
	p.credit -= size
	storeRelease(&p.sentBytes, p.sentBytes+size)
	return true
}

// unspend takes back a spend whose morsel was not sent after all.
func (p *Producer) unspend(size uint64) {
	p.credit += size
	storeRelease(&p.sentBytes, p.sentBytes-size)
}

// lease adds at least need bytes to the producer's credit: a chunk if the
// budget has room for one, else need if it has room for that, else need
// anyway if nothing at all is in flight (a morsel alone is always let
// through).
func (p *Producer) lease(need uint64) bool {
	x := p.x
	l := max(need, x.chunk)
	if !tryAdd(&x.sent, l, func(s uint64) bool { return p.fitsBudget(s, l) }, &x.space) {
		l = need
		if !tryAdd(&x.sent, l, func(s uint64) bool { return p.fitsBudget(s, l) }, &x.space) {
			if x.inFlight() != 0 {
				return false
			}
			atomic.AddUint64(&x.sent, l) // a morsel alone
		}
	}
	p.credit += l
	return true
}

// returnCredit hands the producer's unused credit back to the budget.
func (p *Producer) returnCredit() {
	if p.credit > 0 {
		atomic.AddUint64(&p.x.sent, -p.credit)
		p.credit = 0
		p.x.space.signal()
	}
}

// tryAdd adds size to the shared counter *sent, and keeps it if fits
// allows the value before it; otherwise it takes it back and signals ev,
// on which a producer that saw the bytes for a moment may be waiting. An
// atomic add never retries, unlike a CAS loop; the value fits judges
// includes other producers' tentative adds, so it errs on the safe side.
func tryAdd(sent *uint64, size uint64, fits func(uint64) bool, ev *event) bool {
	if fits(atomic.AddUint64(sent, size) - size) {
		return true
	}
	atomic.AddUint64(sent, -size)
	ev.signal()
	return false
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
// counters: with several producers, what they have spent, not leased.
func (x *Exchange) inFlight() uint64 {
	var n uint64
	if x.multiP {
		for _, p := range x.prods {
			n += atomic.LoadUint64(&p.sentBytes)
		}
	} else {
		n = atomic.LoadUint64(&x.sent)
	}
	for _, p := range x.prods {
		n -= atomic.LoadUint64(&p.returned)
	}
	for _, c := range x.cons {
		n -= atomic.LoadUint64(&c.released)
	}
	return n - atomic.LoadUint64(&x.swept)
}
