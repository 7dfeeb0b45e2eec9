// Ending an exchange: producers closing, consumers closing, and stop
// (cancellation or Close), which returns every morsel no end holds.

package exchange

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/offheap/offheap/internal/check"
)

func (x *Exchange) isStopped() bool { return atomic.LoadUint32(&x.stopped) != 0 }

// stopCause returns why the exchange stopped: ErrClosed, or ErrCanceled
// wrapping the context's cause. Call it only once stopped is set.
func (x *Exchange) stopCause() error { return x.stopErr }

// stop stops the exchange, once: it wakes every parked end, waits until no
// end is busy (every later operation sees stopped), and returns what no end
// holds to the pool. It reports whether this call stopped it.
func (x *Exchange) stop(kind uint32, cause error) bool {
	x.mu.Lock()
	if x.stopped != 0 {
		x.mu.Unlock()
		return false
	}
	x.stopErr = ErrClosed
	if kind == stopCanceled {
		x.stopErr = fmt.Errorf("%w: %w", ErrCanceled, cause)
	}
	atomic.StoreUint32(&x.stopped, kind)
	x.mu.Unlock()
	close(x.stopCh)
	fence()
	x.quiesce(x.prods)
	x.quiesceConsumers()
	x.sweep()
	close(x.sweptCh)
	return true
}

// quiesce waits until none of the producers is busy. Their busy sections
// are short and never park, so this waits for microseconds at most.
func (x *Exchange) quiesce(ps []*Producer) {
	for _, p := range ps {
		waitIdle(&p.busy)
	}
}

func (x *Exchange) quiesceConsumers() {
	for _, c := range x.cons {
		waitIdle(&c.busy)
	}
}

func waitIdle(busy *uint32) {
	for i := 0; atomic.LoadUint32(busy) != 0; i++ {
		if i < 100 {
			runtime.Gosched()
		} else {
			sleepBriefly()
		}
	}
}

// sweep returns to the pool every morsel in a queue or the free rings and
// the producers' stashes and open coalescing morsels, and counts those in
// flight (queued) in swept. Only stop calls it, once no end is busy.
func (x *Exchange) sweep() {
	var n uint64
	for qi, q := range x.queues {
		for {
			v, ok := q.pop()
			if !ok {
				break
			}
			i, _ := unslot(v)
			ci := x.recs.cons(i)
			g := genOf(atomic.LoadUint64(&ci.word))
			if x.topo == Broadcast && !(clearBits(ci, g, 1<<qi) && finish(ci, g)) {
				continue // consumers that received it hold it
			}
			if x.topo != Broadcast {
				storeRelease(&ci.word, uint64(g+2)<<genShift) // as if received and released
			}
			n += uint64(x.recs.seg(i).size)
			x.toPool(i)
		}
	}
	for k := range x.free.rings {
		x.free.rings[k].flush() // what consumers wrote and had not yet published
	}
	x.free.drain(x.toPool)
	for _, p := range x.prods {
		for _, i := range p.stash {
			x.toPool(i)
		}
		p.stash = p.stash[:0]
		for qi, i := range p.open {
			if i != noRecord {
				x.toPool(i)
				p.open[qi] = noRecord
			}
		}
	}
	atomic.StoreUint64(&x.swept, n)
}

func sleepBriefly() { time.Sleep(20 * time.Microsecond) }

// producerClosed counts a producer closed and reports whether it was the
// last open one.
func (x *Exchange) producerClosed() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.liveP--
	return x.liveP == 0
}

// end marks the producers' side closed: consumers drain, then get io.EOF.
func (x *Exchange) end() {
	atomic.StoreUint32(&x.ended, 1)
	close(x.endCh)
}

// consumerClosed counts consumer c closed and reports whether its queue
// closes with it: always, but for a Shared exchange's consumers other than
// the last.
func (x *Exchange) consumerClosed(c *Consumer) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.liveC--
	return x.topo != Shared || x.liveC == 0
}

// leaks reports, in the checked build, the morsels ends still hold.
func (x *Exchange) leaks() error {
	if !check.On {
		return nil
	}
	var n int64
	for _, p := range x.prods {
		n += int64(atomic.LoadUint64(&p.held))
	}
	for _, c := range x.cons {
		n += int64(atomic.LoadUint64(&c.held))
	}
	if n <= 0 {
		return nil
	}
	var bytes uint64
	for i := range x.recs.n.Load() {
		if s := x.recs.seg(i); s.getState() != stateFree {
			bytes += uint64(atomic.LoadUint32(&s.size))
		}
	}
	return x.errorf("close", fmt.Errorf("%d morsels, %d bytes: %w", n, bytes, ErrLeaked))
}
