// Records and their segments: handles, lookups, taking a segment from the
// pool and giving it back.

package exchange

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
)

// handle returns a handle to record i with generation g and length n.
func (x *Exchange) handle(i, g, n uint32) Morsel {
	return Morsel{p: x.view(x.recs.seg(i)), n: n, x: x.id, ref: uint64(g)<<genShift | uint64(i)}
}

// known reports whether m names a record of this exchange.
func (x *Exchange) known(m Morsel) bool { return m.x == x.id && m.index() < x.recs.n.Load() }

// lookupProd returns m's record if m is a live producer's handle, or the
// sentinel that says why not.
func (x *Exchange) lookupProd(m Morsel) (*prodInfo, error) {
	if !x.known(m) {
		return nil, ErrForeign
	}
	if m.gen()&1 != 0 {
		return nil, ErrWrongEnd
	}
	pr := x.recs.prod(m.index())
	g := atomic.LoadUint32(&pr.gen)
	if err := staleness(g, m.gen()); err != nil {
		return nil, err
	}
	if check.On && x.recs.seg(m.index()).getState() != stateHeld {
		return nil, ErrForeign // a live generation in the wrong state: forged
	}
	return pr, nil
}

// lookupCons returns m's record if m is a live consumer's handle, or the
// sentinel that says why not.
func (x *Exchange) lookupCons(m Morsel) (*consInfo, error) {
	if !x.known(m) {
		return nil, ErrForeign
	}
	if m.gen()&1 == 0 {
		return nil, ErrWrongEnd
	}
	ci := x.recs.cons(m.index())
	if err := staleness(genOf(atomic.LoadUint64(&ci.word)), m.gen()); err != nil {
		return nil, err
	}
	if st := x.recs.seg(m.index()).getState(); check.On && st != stateReceived && !(x.topo == Broadcast && st == stateQueued) {
		return nil, ErrForeign
	}
	return ci, nil
}

// staleness compares a record side's generation g with a handle's, hg: nil
// if equal, else why the handle is dead. A producer's handle (even) whose
// record is one ahead was sent; a handle ahead of its record was never
// handed out.
func staleness(g, hg uint32) error {
	switch {
	case g == hg:
		return nil
	case int32(hg-g) > 0:
		return ErrForeign
	case hg&1 == 0 && g == hg+1:
		return ErrSent
	}
	return ErrReleased
}

// fresh takes a spare (or new) record and gives it a new segment of c bytes
// from the pool. If the pool is full it first gives the free rings back.
// Callers are busy.
func (p *Producer) fresh(c uint32) (uint32, error) {
	x := p.x
	i, ok := x.recs.take()
	if !ok {
		return 0, fmt.Errorf("all %d records in use: %w", len(x.recs.dir)*chunkLen, pool.ErrFull)
	}
	ref, b, err := x.pool.Reserve(int(c))
	if errors.Is(err, pool.ErrFull) && p.drainFree() {
		ref, b, err = x.pool.Reserve(int(c))
	}
	if err == nil {
		if err = x.learnBase(ref, b); err != nil {
			_ = x.pool.Unlatch(ref)
			_ = x.pool.Release(ref)
		}
	}
	if err != nil {
		x.recs.putSpare(i)
		return 0, poolCause(err)
	}
	s := x.recs.seg(i)
	s.ref, s.off = ref, x.offsetOf(b)
	atomic.StoreUint32(&s.size, c) // atomic for Close's leak report, which may read it meanwhile
	return i, nil
}

// toPool gives record i's segment back to the pool and keeps the record as
// a spare. No live handle names the record.
func (x *Exchange) toPool(i uint32) {
	s := x.recs.seg(i)
	ref := s.ref
	if check.On {
		s.setState(stateFree)
		check.Fill(x.bytes(s, s.size))
	}
	s.ref = 0
	atomic.StoreUint32(&s.size, 0)
	err := x.pool.Unlatch(ref)
	if err == nil {
		err = x.pool.Release(ref)
	}
	check.Invariant(err == nil, "returning segment %v of record %d: %v", ref, i, err)
	x.recs.putSpare(i)
}

// poolCause strips a pool error down to its sentinel, so that the
// exchange's error names the pool's failure without re-wrapping the pool's
// own context (DESIGN.md, Style).
func poolCause(err error) error {
	for _, s := range []error{pool.ErrFull, pool.ErrTooLarge, pool.ErrClosed} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}
