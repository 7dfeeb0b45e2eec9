// Stats: a racy but atomic snapshot of an exchange's figures.

package exchange

import "sync/atomic"

// Stats describes an exchange. Its figures are read without stopping the
// ends, so they may be a few operations apart from one another.
type Stats struct {
	Name     string
	Topology Topology
	// Budget is Options.Budget; Held is what counts against it: the
	// segment bytes of morsels sent and not yet released (in flight).
	// Held <= Budget + one morsel.
	Budget, Held int
	Queued       int // morsels in queues, sent and not yet received
	Outstanding  int // handles ends hold: reserved and not sent, received and not released
	Sent         int // morsels sent (a coalesced morsel counts once)
	Received     int // morsels received (a broadcast morsel once per consumer)
	Released     int // releases (a broadcast morsel once per consumer)
	Waits        int // times an end parked for room or for a morsel
}

// Stats returns a snapshot of the exchange's figures.
func (x *Exchange) Stats() Stats {
	st := Stats{Name: x.name, Topology: x.topo, Budget: int(x.budget)}
	var out uint64
	for _, p := range x.prods {
		out += atomic.LoadUint64(&p.held)
		st.Sent += int(atomic.LoadUint64(&p.sends))
		st.Waits += int(atomic.LoadUint64(&p.waits))
	}
	for _, c := range x.cons {
		out += atomic.LoadUint64(&c.held)
		st.Received += int(atomic.LoadUint64(&c.recvs))
		st.Released += int(atomic.LoadUint64(&c.frees))
		st.Waits += int(atomic.LoadUint64(&c.waits))
	}
	for _, q := range x.queues {
		st.Queued += q.length()
	}
	st.Held, st.Outstanding = int(int64(x.inFlight())), int(int64(out))
	return st
}
