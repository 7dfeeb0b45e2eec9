// Parking: how a producer waits for room and a consumer for a morsel, without spinning.

package exchange

import (
	"runtime"
	"sync/atomic"
)

// event is a condition some goroutines may wait for (a morsel to receive,
// room to send), signalled by those who change it.
//
// The signaller's side is one load: after publishing its change with a
// release store, it loads waiters and, only if someone waits and fewer
// tokens are on their way than there are waiters, sends a token on ch. A
// waiter first spins briefly (most waits are short), then counts itself in
// waiters, calls fence, checks the condition once more and only then blocks
// on ch, on the exchange's stop channel and on its end channel. The fence
// pairs with the signaller's plain store (see fence), so one of the two
// always sees the other: the waiter finds the condition true, or the
// signaller finds the waiter and sends a token. Counting the tokens in
// flight (pending) keeps a signaller from taking the channel's lock on every
// hand-off while a woken waiter has not yet run. Tokens may be stale (the
// waiter found its condition true without one); waiters therefore loop, and
// a spurious wake-up costs one more check.
//
// Invariant: waiters counts the goroutines between their increment and
// their decrement in wait; pending counts the tokens sent and not yet
// received, at most cap(ch), so a send with pending < waiters <= cap(ch)
// always finds room.
type event struct {
	_       [64]byte
	waiters uint32 // goroutines about to block or blocked on ch
	pending uint32 // tokens in ch
	_       [56]byte
	ch      chan struct{}
}

func (e *event) init(maxWaiters int) { e.ch = make(chan struct{}, maxWaiters) }

// signal wakes a waiter, if there is one. Call it after a release store of
// the change waited for.
func (e *event) signal() {
	if atomic.LoadUint32(&e.waiters) != 0 {
		e.wake(atomic.LoadUint32(&e.waiters))
	}
}

// signalAll wakes every waiter.
func (e *event) signalAll() { e.wake(uint32(cap(e.ch))) }

// wake sends tokens until want of them are on their way.
func (e *event) wake(want uint32) {
	for {
		p := atomic.LoadUint32(&e.pending)
		if p >= want || p >= uint32(cap(e.ch)) {
			return
		}
		if atomic.CompareAndSwapUint32(&e.pending, p, p+1) {
			select {
			case e.ch <- struct{}{}:
			default:
				atomic.AddUint32(&e.pending, ^uint32(0))
				return
			}
		}
	}
}

// spinChecks is how often wait checks the condition, with a pause between,
// before it parks: about a microsecond, less than a park and wake-up costs.
const (
	spinChecks = 16
	spinPauses = 4
)

// wait returns once ready() is true, or stop or end is closed (ready may
// then be false). A nil end never fires.
func (e *event) wait(ready func() bool, stop, end <-chan struct{}) {
	for i := 0; i < spinChecks; i++ {
		if ready() {
			return
		}
		if i < spinPauses {
			pause(64)
		} else {
			runtime.Gosched()
		}
	}
	atomic.AddUint32(&e.waiters, 1)
	defer atomic.AddUint32(&e.waiters, ^uint32(0))
	fence()
	for !ready() {
		select {
		case <-e.ch:
			atomic.AddUint32(&e.pending, ^uint32(0))
		case <-stop:
			return
		case <-end:
			return
		}
	}
}

// pause idles for about n loop iterations without touching memory; the
// noinline keeps the empty loop out of callers' code.
//
//go:noinline
func pause(n int) {
	for i := 0; i < n; i++ {
	}
}
