// The ring baseline: a disruptor-style ring of preallocated []byte entries.

package handoff

import (
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// Ring is a bounded ring of preallocated byte buffers in the manner of the
// LMAX Disruptor, written here because the go-disruptor module is not
// available: a producer claims an entry, writes its morsel into the entry's
// buffer in place and publishes it; a consumer takes the entry, reads the
// morsel in place and frees the entry. Nothing is allocated or copied per
// morsel, but a morsel cannot outlive its turn in the ring, the ring's
// memory is fixed at entries times the largest morsel, and there is no byte
// bound. Entries carry sequence numbers (as in Vyukov's bounded queue), so
// several producers and consumers claim them with a CAS and one of each
// with a plain store of its cursor; publication uses sync/atomic. A side
// that finds the ring full or empty spins briefly, then parks on a channel.
type Ring struct {
	_      [64]byte
	tail   atomic.Uint64 // next entry to claim for writing
	_      [56]byte
	head   atomic.Uint64 // next entry to claim for reading
	_      [56]byte
	mask   uint64
	cells  []ringCell
	multiP bool
	multiC bool
	held   atomic.Int64
	live   atomic.Int32 // producers not yet closed
	ended  atomic.Bool
	stop   chan struct{}
	endCh  chan struct{}
	once   sync.Once
	full   waitList // producers waiting for a free entry
	empty  waitList // consumers waiting for a published one
}

type ringCell struct {
	seq atomic.Uint64
	n   int
	buf []byte
	_   [24]byte
}

// NewRing returns a ring of capacity entries (rounded up to a power of two)
// of maxMorsel bytes each, for producers and consumers goroutines.
func NewRing(capacity, maxMorsel, producers, consumers int) *Ring {
	n := queueLen(capacity)
	r := &Ring{mask: uint64(n - 1), cells: make([]ringCell, n), multiP: producers > 1, multiC: consumers > 1,
		stop: make(chan struct{}), endCh: make(chan struct{})}
	for i := range r.cells {
		r.cells[i].seq.Store(uint64(i))
		r.cells[i].buf = make([]byte, maxMorsel)
	}
	r.live.Store(int32(producers))
	r.full.init(producers)
	r.empty.init(consumers)
	return r
}

// Claim returns up to k free entries from position pos on, waiting for one
// if the ring is full; the caller writes them and calls Publish.
func (r *Ring) Claim(k int) (pos uint64, n int, err error) {
	for spins := 0; ; spins++ {
		if pos, n, raced := r.grab(&r.tail, r.multiP, k, 0); n > 0 {
			return pos, n, nil
		} else if raced {
			continue
		}
		pos = r.tail.Load()
		if int64(r.cells[pos&r.mask].seq.Load()-pos) >= 0 {
			continue // another producer moved on
		}
		if err := r.full.wait(spins, r.stop, nil, func() bool {
			p := r.tail.Load()
			return int64(r.cells[p&r.mask].seq.Load()-p) >= 0
		}); err != nil {
			return 0, 0, err
		}
	}
}

// Entry returns the buffer of the entry at pos.
func (r *Ring) Entry(pos uint64) []byte { return r.cells[pos&r.mask].buf }

// Publish makes the claimed entry at pos, holding n bytes, readable.
func (r *Ring) Publish(pos uint64, n int) {
	c := &r.cells[pos&r.mask]
	c.n = n
	r.held.Add(int64(n))
	c.seq.Store(pos + 1)
	r.empty.signal()
}

// Take returns up to k published entries from position pos on, waiting for
// one if the ring is empty; the caller reads them and calls Free. It
// returns io.EOF once the producers have closed and the ring is empty.
func (r *Ring) Take(k int) (pos uint64, n int, err error) {
	for spins := 0; ; spins++ {
		if pos, n, raced := r.grab(&r.head, r.multiC, k, 1); n > 0 {
			return pos, n, nil
		} else if raced {
			continue
		}
		pos = r.head.Load()
		if int64(r.cells[pos&r.mask].seq.Load()-(pos+1)) >= 0 {
			continue
		}
		if r.ended.Load() {
			if p := r.head.Load(); r.cells[p&r.mask].seq.Load() != p+1 {
				return 0, 0, io.EOF
			}
			continue
		}
		if err := r.empty.wait(spins, r.stop, r.endCh, func() bool {
			p := r.head.Load()
			return r.cells[p&r.mask].seq.Load() == p+1 || r.ended.Load()
		}); err != nil {
			return 0, 0, err
		}
	}
}

// Morsel returns the bytes of the published entry at pos.
func (r *Ring) Morsel(pos uint64) []byte {
	c := &r.cells[pos&r.mask]
	return c.buf[:c.n]
}

// Free hands the read entry at pos back to the producers.
func (r *Ring) Free(pos uint64) {
	c := &r.cells[pos&r.mask]
	r.held.Add(-int64(c.n))
	c.seq.Store(pos + r.mask + 1)
	r.full.signal()
}

// grab moves cursor (tail or head) past a run of up to k entries ready at
// it (see run) and returns where the run starts and its length; with
// several movers (multi) it claims the run with a CAS, and raced reports a
// lost one. n is 0 when no entry is ready.
func (r *Ring) grab(cursor *atomic.Uint64, multi bool, k int, off uint64) (pos uint64, n int, raced bool) {
	pos = cursor.Load()
	if n = r.run(pos, k, off); n == 0 {
		return pos, 0, false
	}
	if !multi {
		cursor.Store(pos + uint64(n))
		return pos, n, false
	}
	if cursor.CompareAndSwap(pos, pos+uint64(n)) {
		return pos, n, false
	}
	return 0, 0, true
}

// run counts the entries from pos on, up to k, whose sequence is their
// position plus off: free ones (0) or published ones (1).
func (r *Ring) run(pos uint64, k int, off uint64) int {
	n := 0
	for n < k && r.cells[(pos+uint64(n))&r.mask].seq.Load() == pos+uint64(n)+off {
		n++
	}
	return n
}

// CloseProducer ends one producer's stream.
func (r *Ring) CloseProducer() {
	if r.live.Add(-1) == 0 {
		r.ended.Store(true)
		close(r.endCh)
	}
}

// Cancel stops the ring: blocked ends return ErrStopped, and published
// entries are freed.
func (r *Ring) Cancel() {
	r.once.Do(func() { close(r.stop) })
	for {
		pos := r.head.Load()
		c := &r.cells[pos&r.mask]
		if c.seq.Load() != pos+1 || !r.head.CompareAndSwap(pos, pos+1) {
			if c.seq.Load() != pos+1 {
				return
			}
			continue
		}
		r.Free(pos)
	}
}

// Held returns the bytes of published entries not yet freed.
func (r *Ring) Held() int64 { return r.held.Load() }

// waitList parks goroutines waiting for a ring's entries, after a short
// spin. Its waker pays one atomic load when nobody waits.
type waitList struct {
	waiters atomic.Int32
	_       [60]byte
	ch      chan struct{}
}

func (w *waitList) init(n int) { w.ch = make(chan struct{}, n) }

func (w *waitList) signal() {
	if w.waiters.Load() != 0 {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
}

// wait spins (the first calls) or parks until ready, stop or end; it
// returns ErrStopped for stop.
func (w *waitList) wait(spins int, stop, end <-chan struct{}, ready func() bool) error {
	if spins < 32 {
		if spins&7 == 7 {
			runtime.Gosched()
		}
		return nil
	}
	w.waiters.Add(1)
	defer w.waiters.Add(-1)
	if ready() {
		return nil
	}
	select {
	case <-w.ch:
	case <-end:
	case <-stop:
		return ErrStopped
	}
	return nil
}

// ringTransport adapts a Ring to Transport.
type ringTransport struct{ r *Ring }

func newRingTransport(c Config) *ringTransport {
	return &ringTransport{NewRing(c.Capacity, c.MaxMorsel, c.Producers, c.Consumers)}
}

func (t *ringTransport) Sender(int) Sender     { return ringSender{t.r} }
func (t *ringTransport) Receiver(int) Receiver { return t }
func (t *ringTransport) Cancel()               { t.r.Cancel() }
func (t *ringTransport) Held() int64           { return t.r.Held() }
func (t *ringTransport) Close() error          { t.r.Cancel(); return nil }

func (t *ringTransport) Recv(read func([]byte)) error {
	pos, _, err := t.r.Take(1)
	if err != nil {
		return err
	}
	read(t.r.Morsel(pos))
	t.r.Free(pos)
	return nil
}

type ringSender struct{ r *Ring }

func (s ringSender) Send(n int, fill func([]byte)) error {
	pos, _, err := s.r.Claim(1)
	if err != nil {
		return err
	}
	fill(s.r.Entry(pos)[:n])
	s.r.Publish(pos, n)
	return nil
}

func (s ringSender) Close() error { s.r.CloseProducer(); return nil }
