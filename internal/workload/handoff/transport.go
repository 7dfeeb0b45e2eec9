// Package handoff is the exchange suite's workloads, shared by the exchange
// package's Go benchmarks and by `offheap bench exchange`: morsels handed
// from producers to consumers through an exchange.Exchange and through the
// baselines it is measured against (a channel of pool refs, a channel of
// heap copies, a disruptor-style ring). It uses only the standard library
// and the core; the command adds baselines of its own through Transport.
package handoff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/pool"
)

// Impls are the transports this package has, in the order they run.
var Impls = []string{"offheap", "chan-ref", "chan-bytes", "ring"}

// ErrStopped is what a blocked end of a baseline returns after Cancel.
var ErrStopped = errors.New("stopped")

// Config shapes a transport.
type Config struct {
	Producers, Consumers int
	// MaxMorsel is the largest morsel a producer sends.
	MaxMorsel int
	// Budget is the exchange's byte budget; the baselines have none.
	Budget int
	// Capacity is how many morsels a baseline's queue holds (the
	// exchange's queue length too): the baselines' only bound.
	Capacity int
}

// Transport carries morsels from producers to consumers: each of
// Config.Producers goroutines uses its own Sender, each consumer its own
// Receiver.
type Transport interface {
	Sender(i int) Sender
	Receiver(i int) Receiver
	// Cancel stops the transport: blocked ends return, and what is in
	// flight is dropped or released.
	Cancel()
	// Held returns the bytes of morsels sent and not yet released.
	Held() int64
	// Close frees the transport once its ends have returned.
	Close() error
}

// Sender is a producer's end.
type Sender interface {
	// Send hands on a morsel of n bytes, which fill writes in place.
	Send(n int, fill func([]byte)) error
	// Close ends the producer's stream.
	Close() error
}

// Receiver is a consumer's end.
type Receiver interface {
	// Recv passes the next morsel's bytes to read and then releases it; it
	// returns io.EOF once every producer has closed and the queue is empty.
	Recv(read func([]byte)) error
}

// New returns the transport impl, one of Impls, shaped by c.
func New(impl string, c Config) (Transport, error) {
	switch impl {
	case "offheap":
		return newExchange(c)
	case "chan-ref":
		return newChanRef(c)
	case "chan-bytes":
		return newChanBytes(c), nil
	case "ring":
		return newRingTransport(c), nil
	}
	return nil, fmt.Errorf("handoff: unknown transport %q (have %v)", impl, Impls)
}

// newPool returns a pool with room for everything a transport of c can hold.
func newPool(c Config) (*pool.Pool, error) {
	need := max(c.Budget, c.Capacity*c.MaxMorsel) + (c.Producers+c.Consumers+2)*c.MaxMorsel
	return pool.New(min(need, 64<<20), &pool.Options{MaxCapacity: need + 64<<20, Name: "handoff"})
}

// exchangeTransport is the exchange itself.
type exchangeTransport struct {
	p  *pool.Pool
	x  *exchange.Exchange
	ps []*exchange.Producer
	cs []*exchange.Consumer
}

func newExchange(c Config) (*exchangeTransport, error) {
	p, err := newPool(c)
	if err != nil {
		return nil, err
	}
	x, err := exchange.New(context.Background(), p, &exchange.Options{
		Producers: c.Producers, Consumers: c.Consumers, Budget: c.Budget, QueueLen: queueLen(c.Capacity),
	})
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	t := &exchangeTransport{p: p, x: x}
	for range c.Producers {
		e, _ := x.Producer()
		t.ps = append(t.ps, e)
	}
	for range c.Consumers {
		e, _ := x.Consumer()
		t.cs = append(t.cs, e)
	}
	return t, nil
}

// queueLen rounds a capacity up to a power of two, at least 2.
func queueLen(n int) int {
	q := 2
	for q < n {
		q <<= 1
	}
	return q
}

func (t *exchangeTransport) Sender(i int) Sender     { return exchangeSender{t.ps[i]} }
func (t *exchangeTransport) Receiver(i int) Receiver { return exchangeReceiver{t.cs[i]} }
func (t *exchangeTransport) Cancel()                 { _ = t.x.Close() }
func (t *exchangeTransport) Held() int64             { return int64(t.x.Stats().Held) }

func (t *exchangeTransport) Close() error {
	err := t.x.Close()
	if errors.Is(err, exchange.ErrClosed) {
		err = nil
	}
	return errors.Join(err, t.p.Close())
}

type exchangeSender struct{ p *exchange.Producer }

func (s exchangeSender) Send(n int, fill func([]byte)) error {
	m, err := s.p.Reserve(n)
	if err != nil {
		return err
	}
	fill(m.Bytes())
	return s.p.Send(m)
}

func (s exchangeSender) Close() error { return s.p.Close() }

type exchangeReceiver struct{ c *exchange.Consumer }

func (r exchangeReceiver) Recv(read func([]byte)) error {
	m, err := r.c.Recv()
	if err != nil {
		return err
	}
	read(m.Bytes())
	return r.c.Release(m)
}

// chanRef is a channel of pool refs: zero-copy like the exchange, but a
// pool lock for every reserve and release, a channel lock for every
// hand-off, and no byte bound.
type chanRef struct {
	p     *pool.Pool
	ch    chan pool.Ref
	stop  chan struct{}
	once  sync.Once
	held  atomic.Int64 // bytes sent and not yet released
	ended endCount
}

func newChanRef(c Config) (*chanRef, error) {
	p, err := newPool(c)
	if err != nil {
		return nil, err
	}
	t := &chanRef{p: p, ch: make(chan pool.Ref, c.Capacity), stop: make(chan struct{})}
	t.ended.n.Store(int32(c.Producers))
	return t, nil
}

func (t *chanRef) Sender(int) Sender     { return chanRefSender{t} }
func (t *chanRef) Receiver(int) Receiver { return chanRefReceiver{t} }
func (t *chanRef) Held() int64           { return t.held.Load() }

// Cancel wakes the ends and releases every ref left in the channel.
func (t *chanRef) Cancel() {
	t.once.Do(func() { close(t.stop) })
	for {
		select {
		case r, ok := <-t.ch:
			if !ok {
				return
			}
			t.release(r)
		default:
			return
		}
	}
}

func (t *chanRef) Close() error { t.Cancel(); return t.p.Close() }

// release frees a sent ref.
func (t *chanRef) release(r pool.Ref) {
	if seg, err := t.p.Info(r); err == nil {
		t.held.Add(-int64(seg.Len))
	}
	_ = t.p.Release(r)
}

type chanRefSender struct{ t *chanRef }

func (s chanRefSender) Send(n int, fill func([]byte)) error {
	r, b, err := s.t.p.Reserve(n)
	if err != nil {
		return err
	}
	fill(b)
	_ = s.t.p.Unlatch(r) // publishes it
	s.t.held.Add(int64(n))
	select {
	case s.t.ch <- r:
		return nil
	case <-s.t.stop:
		s.t.release(r)
		return ErrStopped
	}
}

func (s chanRefSender) Close() error {
	if s.t.ended.done() {
		close(s.t.ch)
	}
	return nil
}

type chanRefReceiver struct{ t *chanRef }

func (r chanRefReceiver) Recv(read func([]byte)) error {
	var ref pool.Ref
	var ok bool
	select {
	case ref, ok = <-r.t.ch:
		if !ok {
			return io.EOF
		}
	case <-r.t.stop:
		return ErrStopped
	}
	b, err := r.t.p.Latch(ref)
	if err != nil {
		return err
	}
	read(b)
	_ = r.t.p.Unlatch(ref)
	r.t.held.Add(-int64(len(b)))
	return r.t.p.Release(ref)
}

// endCount counts producers still open; the last to close ends the stream.
type endCount struct{ n atomic.Int32 }

func (e *endCount) done() bool { return e.n.Add(-1) == 0 }

// chanBytes is a channel of []byte: each morsel is written into the
// producer's buffer and copied into a new slice on the Go heap, which the
// garbage collector frees after the consumer has read it.
type chanBytes struct {
	ch    chan []byte
	stop  chan struct{}
	once  sync.Once
	held  atomic.Int64
	ended endCount
	max   int
}

func newChanBytes(c Config) *chanBytes {
	t := &chanBytes{ch: make(chan []byte, c.Capacity), stop: make(chan struct{}), max: c.MaxMorsel}
	t.ended.n.Store(int32(c.Producers))
	return t
}

func (t *chanBytes) Sender(int) Sender     { return &chanBytesSender{t: t, buf: make([]byte, t.max)} }
func (t *chanBytes) Receiver(int) Receiver { return chanBytesReceiver{t} }
func (t *chanBytes) Held() int64           { return t.held.Load() }

// Cancel wakes the ends and drops every slice left in the channel.
func (t *chanBytes) Cancel() {
	t.once.Do(func() { close(t.stop) })
	for {
		select {
		case b, ok := <-t.ch:
			if !ok {
				return
			}
			t.held.Add(-int64(len(b)))
		default:
			return
		}
	}
}

func (t *chanBytes) Close() error { t.Cancel(); return nil }

type chanBytesSender struct {
	t   *chanBytes
	buf []byte
}

func (s *chanBytesSender) Send(n int, fill func([]byte)) error {
	fill(s.buf[:n])
	b := make([]byte, n)
	copy(b, s.buf)
	s.t.held.Add(int64(n))
	select {
	case s.t.ch <- b:
		return nil
	case <-s.t.stop:
		s.t.held.Add(-int64(n))
		return ErrStopped
	}
}

func (s *chanBytesSender) Close() error {
	if s.t.ended.done() {
		close(s.t.ch)
	}
	return nil
}

type chanBytesReceiver struct{ t *chanBytes }

func (r chanBytesReceiver) Recv(read func([]byte)) error {
	select {
	case b, ok := <-r.t.ch:
		if !ok {
			return io.EOF
		}
		read(b)
		r.t.held.Add(-int64(len(b)))
		return nil
	case <-r.t.stop:
		return ErrStopped
	}
}
