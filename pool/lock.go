// The pool's lock, one word that is both a spin lock for writers and the
// sequence counter lock-free latchers check, and the moves word that copy
// readers check instead.

package pool

import (
	"runtime"
	"sync/atomic"
	"time"

	"github.com/offheap/offheap/internal/fence"
)

// The seq word: bit 0 is set while a writer holds the lock, bit 63 once the
// pool is closed, and bits 1-62 count lock releases.
const (
	seqLocked = 1
	seqClosed = 1 << 63
)

// lock takes the writer lock and returns the word to pass to unlock; ok is
// false, and the lock not taken, if the pool is closed.
func (p *Pool) lock() (h uint64, ok bool) {
	if h, ok = p.tryLock(); !ok {
		h, ok = p.lockSlow()
	}
	return h, ok
}

// tryLock takes the lock if it is free and the pool open: the fast path,
// small enough to inline.
func (p *Pool) tryLock() (uint64, bool) {
	s := atomic.LoadUint64(&p.seq)
	return s + 1, s&(seqLocked|seqClosed) == 0 && atomic.CompareAndSwapUint64(&p.seq, s, s+1)
}

// lockSlow waits (see waiter) until it takes the lock or sees the pool closed.
func (p *Pool) lockSlow() (uint64, bool) {
	var w waiter
	for {
		s := atomic.LoadUint64(&p.seq)
		if s&seqClosed != 0 {
			return 0, false
		}
		if s&seqLocked == 0 && atomic.CompareAndSwapUint64(&p.seq, s, s+1) {
			return s + 1, true
		}
		w.wait()
	}
}

// unlock releases the lock taken as h, publishing every write made under it
// to whoever then sees the new sequence number.
func (p *Pool) unlock(h uint64) { fence.StoreRelease(&p.seq, h+1) }

// unlockClosed releases the lock and marks the pool closed.
func (p *Pool) unlockClosed(h uint64) { fence.StoreRelease(&p.seq, (h+1)|seqClosed) }

// lockedBegin waits out a writer and returns the sequence number a
// lock-free latcher checks after its CAS; ok is false if the pool is closed.
func (p *Pool) lockedBegin() (s uint64, ok bool) {
	var w waiter
	for {
		s = atomic.LoadUint64(&p.seq)
		if s&seqClosed != 0 {
			return 0, false
		}
		if s&seqLocked == 0 {
			return s, true
		}
		w.wait()
	}
}

// The moves word, which copy readers validate against instead of seq: it
// changes only when compaction starts and ends (movesActive is set while
// it runs) and when the pool closes, so its cache line stays shared and
// readers of different segments never contend.
const (
	movesActive = 1
	movesClosed = 1 << 63
)

// readBegin waits out a compaction and returns the moves word a copy reader
// validates against; ok is false if the pool is closed.
func (p *Pool) readBegin() (m uint64, ok bool) {
	var w waiter
	for {
		m = atomic.LoadUint64(&p.moves)
		if m&movesClosed != 0 {
			return 0, false
		}
		if m&movesActive == 0 {
			return m, true
		}
		w.wait()
	}
}

// readValid reports whether a copy of slot s made after loading its word w
// and the moves word m is good: the segment was neither released (its
// generation or state would differ) nor moved (moves would differ) since.
// Latch counts may change meanwhile; they do not affect the bytes. The
// loads being validated must come before it: fence.Load orders them where
// the hardware would not.
func (p *Pool) readValid(s *slot, w, m uint64) bool {
	fence.Load()
	return (s.loadWord()^w)&(genMask|stateMask) == 0 && atomic.LoadUint64(&p.moves) == m
}

// waiter paces a goroutine waiting for the lock (or for a compaction to
// end): first it checks again after pauses that double from minPause to
// maxPause cycles, touching no shared memory in between, for spinChecks
// checks (some 50µs); then it yields the P (the holder may be a goroutine
// waiting for one) and the CPU (the holder's thread may have been
// descheduled, which spinning only prolongs); after yieldChecks more, it
// sleeps, for a long compaction is running. With one P, spinning cannot
// help, and it yields at once.
//
// The pauses are what make the lock fast under contention: a waiter that
// took the lock the moment it was free would bounce the allocator's cache
// lines between CPUs on every critical section, while one that pauses lets
// the CPU that holds them run several in a row.
type waiter struct{ checks, pause int }

const (
	minPause    = 8
	maxPause    = 16 << 10
	spinChecks  = 20
	yieldChecks = 1000
)

func (w *waiter) wait() {
	if w.checks == 0 && runtime.GOMAXPROCS(0) == 1 {
		w.checks = spinChecks
	}
	switch w.checks++; {
	case w.checks <= spinChecks:
		w.pause = min(max(2*w.pause, minPause), maxPause)
		pause(w.pause)
	case w.checks <= spinChecks+yieldChecks:
		runtime.Gosched()
		osYield()
	default:
		time.Sleep(100 * time.Microsecond)
	}
}

// pause idles for about n cycles without touching memory; the Go compiler
// keeps empty loops (and noinline keeps this one out of callers' code).
//
//go:noinline
func pause(n int) {
	for i := 0; i < n; i++ {
	}
}
