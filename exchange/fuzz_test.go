package exchange_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/internal/fuzzops"
	"github.com/offheap/offheap/pool"
)

// model is the reference an exchange is checked against: plain queues of
// byte strings, the morsels each end holds, and the handles that are dead.
// One goroutine drives both, so every operation is deterministic; the model
// never asks for an operation that would block (a receive from an empty
// queue, a send to a full one), and the budget is large enough never to.
type model struct {
	t           *testing.T
	topo        exchange.Topology
	queueLen    int
	coalesce    int
	x           *exchange.Exchange
	pool        *pool.Pool
	prods       []*mprod
	cons        []*mcons
	queues      [][]*mmorsel // what each queue holds, oldest first
	closedQ     []bool       // queue closed: its readers are gone
	dead        []dead       // handles that must fail, and how
	ended       bool         // every producer closed
	stopped     bool         // Close ran, or the context was cancelled
	stopErr     error        // what operations fail with once stopped
	cancel      context.CancelFunc
	closeCalled bool // Close ran (a second one fails)
	id          int  // for distinct contents
}

type mprod struct {
	end    *exchange.Producer
	held   []*mmorsel
	open   [][]byte // per queue: the coalescing morsel's bytes, or nil
	closed bool
}

type mcons struct {
	end    *exchange.Consumer
	held   []*mmorsel
	closed bool
}

// mmorsel is one morsel: its handle (the current owner's) and its bytes.
type mmorsel struct {
	h    exchange.Morsel
	data []byte
	refs int // broadcast: consumers that have yet to release it
}

type dead struct {
	h        exchange.Morsel
	producer bool  // a producer's handle
	want     error // ErrSent or ErrReleased; nil: either
}

// Operations, one method each; the fuzz input picks them and their arguments.
const (
	opReserve = iota
	opSend
	opSendBatch
	opRecv
	opRecvBatch
	opRelease
	opReleaseBatch
	opDiscard
	opStale
	opWrongEnd
	opFlush
	opCloseProducer
	opCloseConsumer
	opClose
	opReserveBatch
	opCancel
	opCount
)

// FuzzExchange runs random operation sequences on exchanges of every
// topology, with and without coalescing, against model, checking every
// morsel's bytes, every error, the counts in Stats and, at the end, that the
// pool holds no byte more than before the exchange opened.
func FuzzExchange(f *testing.F) {
	f.Add([]byte{0, 1, 1, 0, 8, 0, 16, 1, 0, 0, 3, 0, 5, 0, 0, 0, 11, 0, 3, 0})
	f.Add([]byte{1, 2, 2, 0, 40, 0, 41, 1, 0, 1, 2, 1, 3, 0, 3, 1, 5, 0, 5, 1, 12, 0, 11, 0, 11, 1})
	f.Add([]byte{2, 2, 3, 0, 10, 0, 20, 2, 0, 0, 3, 0, 3, 1, 3, 2, 5, 0, 5, 1, 5, 2, 8, 0, 9, 0})
	f.Add([]byte{4, 1, 1, 0, 3, 0, 3, 0, 3, 1, 0, 1, 0, 1, 0, 10, 0, 3, 0, 6, 0, 13})
	f.Add([]byte{0, 2, 2, 0, 200, 0, 100, 2, 0, 3, 0, 13, 5, 0, 7, 0, 1, 0, 0})
	f.Add([]byte{5, 1, 2, 0, 1, 0, 2, 0, 3, 0, 4, 1, 0, 1, 0, 1, 0, 10, 0, 4, 0, 6, 0, 12, 0, 11, 0})
	f.Add(bytes.Repeat([]byte{0, 50, 1, 0, 3, 0, 5, 0, 8, 0}, 30))
	f.Add([]byte{1, 1, 1, 1, 0, 0, 0, 40, 1, 1, 0, 0, 0, 0, 0, 0, 60, 1, 3, 0, 0, 15, 0, 0, 1, 0, 0, 0, 3, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		in := fuzzops.New(ops)
		m := newModel(t, in)
		defer m.finish()
		for in.More() {
			m.step(in)
			m.check()
		}
	})
}

func newModel(t *testing.T, in *fuzzops.Reader) *model {
	cfg := in.Intn(6)
	m := &model{t: t, topo: exchange.Topology(cfg % 3), queueLen: 2 << in.Intn(3)}
	if cfg >= 3 {
		m.coalesce = 64 + 32*in.Intn(8)
	}
	np, nc := 1+in.Intn(3), 1+in.Intn(3)
	p, err := pool.New(1<<20, &pool.Options{MaxCapacity: 64 << 20, Name: "fuzz"})
	if err != nil {
		t.Fatal(err)
	}
	m.pool = p
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	t.Cleanup(cancel)
	m.x, err = exchange.New(ctx, p, &exchange.Options{
		Topology: m.topo, Producers: np, Consumers: nc, Budget: 1 << 30, QueueLen: m.queueLen, Coalesce: m.coalesce,
	})
	if err != nil {
		t.Fatal(err)
	}
	nq := nc
	if m.topo == exchange.Shared {
		nq = 1
	}
	m.queues, m.closedQ = make([][]*mmorsel, nq), make([]bool, nq)
	for range np {
		e, err := m.x.Producer()
		if err != nil {
			t.Fatal(err)
		}
		m.prods = append(m.prods, &mprod{end: e, open: make([][]byte, nq)})
	}
	for range nc {
		e, err := m.x.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		m.cons = append(m.cons, &mcons{end: e})
	}
	if _, err := m.x.Producer(); !errors.Is(err, exchange.ErrInvalid) {
		t.Fatalf("a producer end too many: %v", err)
	}
	return m
}

func (m *model) step(in *fuzzops.Reader) {
	op := in.Intn(opCount)
	pi, ci := in.Intn(len(m.prods)), in.Intn(len(m.cons))
	pr, co := m.prods[pi], m.cons[ci]
	switch op {
	case opReserve:
		m.reserve(pr, in.Intn(256)*(1+in.Intn(16)), in.Intn(2) == 0)
	case opSend:
		m.send(pr, in.Intn(len(pr.held)+1), in.Intn(len(m.queues)))
	case opSendBatch:
		m.sendBatch(pr, in.Intn(len(pr.held)+1), in.Intn(len(m.queues)))
	case opRecv:
		m.recv(ci, co)
	case opRecvBatch:
		m.recvBatch(ci, co, 1+in.Intn(4))
	case opRelease:
		m.release(co, in.Intn(len(co.held)+1))
	case opReleaseBatch:
		m.releaseBatch(co, in.Intn(len(co.held)+1), in.Intn(2) == 0)
	case opDiscard:
		m.discard(pr, in.Intn(len(pr.held)+1))
	case opStale:
		m.stale(in.Intn(len(m.dead) + 1))
	case opWrongEnd:
		m.wrongEnd(pr, co)
	case opFlush:
		m.flush(pr)
	case opCloseProducer:
		m.closeProducer(pr)
	case opCloseConsumer:
		m.closeConsumer(ci, co)
	case opClose:
		m.close()
	case opReserveBatch:
		m.reserveBatch(pr, in.Intn(8), in.Intn(300))
	case opCancel:
		m.cancelContext()
	}
}

// contents returns distinct bytes for a new morsel of n bytes.
func (m *model) contents(n int) []byte {
	m.id++
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(m.id*7 + i)
	}
	return b
}

func (m *model) reserve(pr *mprod, n int, commit bool) {
	data := m.contents(n)
	var h exchange.Morsel
	var err error
	if commit {
		h, err = pr.end.Commit(data)
	} else if h, err = pr.end.Reserve(n); err == nil {
		copy(h.Bytes(), data)
	}
	switch {
	case pr.closed:
		m.wantErr(err, exchange.ErrClosed, "reserve on a closed producer")
	case m.stopped:
		m.wantStopped(err, "reserve after the exchange stopped")
	case err != nil:
		m.t.Fatalf("reserve %d: %v", n, err)
	default:
		if h.Len() != n {
			m.t.Fatalf("reserve %d: morsel of %d", n, h.Len())
		}
		pr.held = append(pr.held, &mmorsel{h: h, data: data})
	}
}

func (m *model) reserveBatch(pr *mprod, k, n int) {
	hs := make([]exchange.Morsel, k)
	err := pr.end.ReserveBatch(hs, n)
	switch {
	case k == 0:
		if err != nil {
			m.t.Fatalf("empty reserve batch: %v", err)
		}
	case pr.closed:
		m.wantErr(err, exchange.ErrClosed, "reserve batch on a closed producer")
	case m.stopped:
		m.wantStopped(err, "reserve batch after the exchange stopped")
	case err != nil:
		m.t.Fatalf("reserve batch of %d x %d: %v", k, n, err)
	default:
		for _, h := range hs {
			data := m.contents(n)
			if h.Len() != n {
				m.t.Fatalf("reserve batch: morsel of %d, want %d", h.Len(), n)
			}
			copy(h.Bytes(), data)
			pr.held = append(pr.held, &mmorsel{h: h, data: data})
		}
	}
}

// destination returns the queue a send to partition part goes to.
func (m *model) destination(part int) int {
	if m.topo == exchange.Partitioned {
		return part
	}
	return 0
}

// pushes returns the queues a morsel sent to queue q lands in.
func (m *model) pushes(q int) []int {
	if m.topo != exchange.Broadcast {
		return []int{q}
	}
	var r []int
	for i, closed := range m.closedQ {
		if !closed {
			r = append(r, i)
		}
	}
	return r
}

// noReader reports whether a send to queue q finds no consumer.
func (m *model) noReader(q int) bool {
	if m.topo == exchange.Broadcast {
		return len(m.pushes(q)) == 0
	}
	return m.closedQ[q]
}

// room reports whether k more morsels fit every queue a send to q pushes to.
func (m *model) room(q, k int) bool {
	for _, d := range m.pushes(q) {
		if len(m.queues[d])+k > m.queueLen {
			return false
		}
	}
	return true
}

// deliveries returns how many morsels a send of n bytes to q, or a flush
// (n < 0), hands to the queues under coalescing.
func (m *model) deliveries(pr *mprod, q, n int) int {
	if m.coalesce == 0 || n >= m.coalesce {
		if n >= 0 && pr.open[q] != nil {
			return 2 // the open one goes first, to keep the order
		}
		if n >= 0 {
			return 1
		}
		return 0
	}
	open := pr.open[q]
	k := 0
	if open != nil && len(open)+n > m.coalesce {
		k, open = 1, nil
	}
	if len(open)+n == m.coalesce {
		k++
	}
	return k
}

func (m *model) send(pr *mprod, k, part int) {
	if k == len(pr.held) {
		return
	}
	q := m.destination(part)
	mm := pr.held[k]
	if !pr.closed && !m.stopped && (!m.room(q, m.deliveries(pr, q, len(mm.data))) || m.coalesce > 0 && m.noReader(q)) {
		return // it would block, or coalescing makes its fate hard to predict
	}
	var err error
	if m.topo == exchange.Partitioned {
		err = pr.end.SendTo(part, mm.h)
	} else {
		err = pr.end.Send(mm.h)
	}
	m.sent(pr, k, q, err)
}

// sent updates the model after a Send of pr.held[k] to queue q returned err.
func (m *model) sent(pr *mprod, k, q int, err error) {
	mm := pr.held[k]
	switch {
	case pr.closed:
		m.wantErr(err, exchange.ErrClosed, "send on a closed producer")
		return
	case m.stopped:
		m.wantStopped(err, "send after the exchange stopped")
	case m.noReader(q):
		m.wantErr(err, exchange.ErrNoReader, "send to a closed queue")
	case err != nil:
		m.t.Fatalf("send %v: %v", mm.h, err)
	default:
		m.enqueue(pr, q, mm.data)
	}
	pr.held = append(pr.held[:k], pr.held[k+1:]...)
	m.dead = append(m.dead, dead{h: mm.h, producer: true})
}

// enqueue models the delivery of data sent to queue q, through pr's open
// coalescing morsel if it is short.
func (m *model) enqueue(pr *mprod, q int, data []byte) {
	if m.coalesce == 0 || len(data) >= m.coalesce {
		m.flushQueue(pr, q)
		m.push(q, data)
		return
	}
	if pr.open[q] != nil && len(pr.open[q])+len(data) > m.coalesce {
		m.flushQueue(pr, q)
	}
	pr.open[q] = append(append([]byte{}, pr.open[q]...), data...)
	if len(pr.open[q]) == m.coalesce {
		m.flushQueue(pr, q)
	}
}

func (m *model) flushQueue(pr *mprod, q int) {
	if pr.open[q] != nil {
		m.push(q, pr.open[q])
		pr.open[q] = nil
	}
}

func (m *model) push(q int, data []byte) {
	targets := m.pushes(q)
	mm := &mmorsel{data: data, refs: len(targets)}
	for _, d := range targets {
		if !m.closedQ[d] {
			m.queues[d] = append(m.queues[d], mm)
		}
	}
}

func (m *model) sendBatch(pr *mprod, k, part int) {
	batch := pr.held[:k]
	q := m.destination(part)
	if m.coalesce > 0 || !pr.closed && !m.stopped && !m.room(q, len(batch)) {
		return // its deliveries are hard to predict, or it would block
	}
	hs := make([]exchange.Morsel, len(batch))
	for i, mm := range batch {
		hs[i] = mm.h
	}
	var err error
	if m.topo == exchange.Partitioned {
		err = pr.end.SendBatchTo(part, hs)
	} else {
		err = pr.end.SendBatch(hs)
	}
	switch {
	case pr.closed:
		m.wantErr(err, exchange.ErrClosed, "batch on a closed producer")
		return
	case m.stopped:
		m.wantStopped(err, "batch after the exchange stopped")
	case len(batch) > 0 && m.noReader(q):
		m.wantErr(err, exchange.ErrNoReader, "batch to a closed queue")
	case err != nil:
		m.t.Fatalf("send batch of %d: %v", len(batch), err)
	default:
		for _, mm := range batch {
			m.push(q, mm.data)
		}
	}
	for _, mm := range batch {
		m.dead = append(m.dead, dead{h: mm.h, producer: true})
	}
	pr.held = pr.held[k:]
}

// queueOf returns the queue consumer ci reads.
func (m *model) queueOf(ci int) int {
	if m.topo == exchange.Shared {
		return 0
	}
	return ci
}

func (m *model) recv(ci int, co *mcons) {
	q := m.queueOf(ci)
	if !co.closed && !m.stopped && len(m.queues[q]) == 0 && !m.ended {
		return // it would block
	}
	h, err := co.end.Recv()
	m.received(ci, co, []exchange.Morsel{h}, err)
}

func (m *model) recvBatch(ci int, co *mcons, k int) {
	q := m.queueOf(ci)
	if !co.closed && !m.stopped && len(m.queues[q]) == 0 && !m.ended {
		return
	}
	hs := make([]exchange.Morsel, k)
	n, err := co.end.RecvBatch(hs)
	if n < min(k, len(m.queues[q])) && err == nil {
		m.t.Fatalf("recv batch of %d got %d with %d queued", k, n, len(m.queues[q]))
	}
	m.received(ci, co, hs[:n], err)
}

// received checks what a receive of consumer ci returned against the model.
func (m *model) received(ci int, co *mcons, hs []exchange.Morsel, err error) {
	q := m.queueOf(ci)
	switch {
	case co.closed:
		m.wantErr(err, exchange.ErrClosed, "recv on a closed consumer")
		return
	case m.stopped:
		m.wantStopped(err, "recv after the exchange stopped")
		return
	case len(m.queues[q]) == 0:
		if err != io.EOF {
			m.t.Fatalf("recv from a drained queue after the producers closed: %v", err)
		}
		return
	case err != nil:
		m.t.Fatalf("recv: %v", err)
	}
	for _, h := range hs {
		mm := m.queues[q][0]
		m.queues[q] = m.queues[q][1:]
		if !bytes.Equal(h.Bytes(), mm.data) {
			m.t.Fatalf("received %d bytes %x, want %x", h.Len(), h.Bytes(), mm.data)
		}
		co.held = append(co.held, &mmorsel{h: h, data: mm.data})
	}
}

func (m *model) release(co *mcons, k int) {
	if k == len(co.held) {
		return
	}
	mm := co.held[k]
	if err := co.end.Release(mm.h); err != nil {
		m.t.Fatalf("release %v: %v", mm.h, err)
	}
	co.held = append(co.held[:k], co.held[k+1:]...)
	m.dead = append(m.dead, dead{h: mm.h, want: exchange.ErrReleased})
}

func (m *model) releaseBatch(co *mcons, k int, repeat bool) {
	hs := make([]exchange.Morsel, 0, k+1)
	for _, mm := range co.held[:k] {
		hs = append(hs, mm.h)
	}
	if repeat && k > 0 {
		hs = append(hs, hs[0])
		before := m.x.Stats()
		err := co.end.ReleaseBatch(hs)
		m.wantErr(err, exchange.ErrReleased, "a batch naming a morsel twice")
		m.unchanged(before, "a bad batch release")
		hs = hs[:k]
	}
	if err := co.end.ReleaseBatch(hs); err != nil {
		m.t.Fatalf("release batch of %d: %v", k, err)
	}
	for _, h := range hs {
		m.dead = append(m.dead, dead{h: h, want: exchange.ErrReleased})
	}
	co.held = co.held[k:]
}

func (m *model) discard(pr *mprod, k int) {
	if k == len(pr.held) {
		return
	}
	mm := pr.held[k]
	if err := pr.end.Discard(mm.h); err != nil {
		m.t.Fatalf("discard %v: %v", mm.h, err)
	}
	pr.held = append(pr.held[:k], pr.held[k+1:]...)
	m.dead = append(m.dead, dead{h: mm.h, producer: true, want: exchange.ErrReleased})
}

// stale uses a dead handle (or the zero Morsel) every way there is: each
// fails with the expected error and changes nothing.
func (m *model) stale(k int) {
	d := dead{h: exchange.Morsel{}, want: exchange.ErrForeign}
	if k < len(m.dead) {
		d = m.dead[k]
	}
	before := m.x.Stats()
	var pr *mprod
	for _, o := range m.prods {
		if !o.closed {
			pr = o
		}
	}
	if pr == nil {
		return
	}
	co := m.cons[0]
	check := func(err error, what string) {
		switch {
		case d.want != nil && !errors.Is(err, d.want) && !errors.Is(err, exchange.ErrWrongEnd) && !errors.Is(err, exchange.ErrInvalid):
			m.t.Fatalf("%s of dead %v: %v, want %v", what, d.h, err, d.want)
		case d.want == nil && !errors.Is(err, exchange.ErrSent) && !errors.Is(err, exchange.ErrReleased):
			m.t.Fatalf("%s of sent %v: %v", what, d.h, err)
		}
	}
	if d.producer || d.want == exchange.ErrForeign {
		if m.topo == exchange.Partitioned {
			check(pr.end.SendTo(0, d.h), "send")
		} else {
			check(pr.end.Send(d.h), "send")
		}
		check(pr.end.Discard(d.h), "discard")
	}
	if !d.producer {
		check(co.end.Release(d.h), "release")
	}
	if d.producer {
		// A producer's handle released through a consumer is the wrong end,
		// unless dead: either way, an error.
		if err := co.end.Release(d.h); err == nil {
			m.t.Fatalf("release of producer handle %v succeeded", d.h)
		}
	}
	m.unchanged(before, "a dead handle")
}

// wrongEnd gives a live producer's handle to a consumer and a live
// consumer's to a producer, and a handle to another exchange.
func (m *model) wrongEnd(pr *mprod, co *mcons) {
	before := m.x.Stats()
	if len(pr.held) > 0 {
		h := pr.held[0].h
		m.wantErr(co.end.Release(h), exchange.ErrWrongEnd, "release of a producer's morsel")
		other := otherExchange(m.t)
		pe, _ := other.Producer()
		m.wantErr(pe.Send(h), exchange.ErrForeign, "send to another exchange")
		_ = other.Close()
	}
	if len(co.held) > 0 && !pr.closed {
		h := co.held[0].h
		var err error
		if m.topo == exchange.Partitioned {
			err = pr.end.SendTo(0, h)
		} else {
			err = pr.end.Send(h)
		}
		m.wantErr(err, exchange.ErrWrongEnd, "send of a consumer's morsel")
		m.wantErr(pr.end.Discard(h), exchange.ErrWrongEnd, "discard of a consumer's morsel")
	}
	if m.topo == exchange.Partitioned && len(pr.held) > 0 && !pr.closed {
		m.wantErr(pr.end.SendTo(len(m.queues), pr.held[0].h), exchange.ErrInvalid, "send to a partition out of range")
		m.wantErr(pr.end.Send(pr.held[0].h), exchange.ErrInvalid, "Send on a partitioned exchange")
	}
	m.unchanged(before, "a handle at the wrong end")
}

func otherExchange(t *testing.T) *exchange.Exchange {
	p, err := pool.New(1<<16, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	x, err := exchange.New(context.Background(), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func (m *model) flush(pr *mprod) {
	n := 0
	for q := range m.queues {
		if pr.open[q] != nil && !m.room(q, 1) {
			return
		}
		if pr.open[q] != nil {
			n++
		}
	}
	err := pr.end.Flush()
	switch {
	case pr.closed:
		m.wantErr(err, exchange.ErrClosed, "flush of a closed producer")
		return
	case m.stopped:
		m.wantStopped(err, "flush after the exchange stopped")
		return
	case err != nil && !errors.Is(err, exchange.ErrNoReader):
		m.t.Fatalf("flush: %v", err)
	}
	for q := range m.queues {
		m.flushQueue(pr, q)
	}
}

func (m *model) closeProducer(pr *mprod) {
	if !pr.closed && !m.stopped {
		for q := range m.queues {
			if pr.open[q] != nil && !m.room(q, 1) {
				return
			}
		}
	}
	err := pr.end.Close()
	if pr.closed {
		m.wantErr(err, exchange.ErrClosed, "second close of a producer")
		return
	}
	if err != nil && !errors.Is(err, exchange.ErrNoReader) {
		m.t.Fatalf("close producer: %v", err)
	}
	if !m.stopped {
		for q := range m.queues {
			m.flushQueue(pr, q)
		}
	}
	for q := range pr.open {
		pr.open[q] = nil
	}
	pr.closed = true
	m.ended = true
	for _, o := range m.prods {
		m.ended = m.ended && o.closed
	}
}

func (m *model) closeConsumer(ci int, co *mcons) {
	err := co.end.Close()
	if co.closed {
		m.wantErr(err, exchange.ErrClosed, "second close of a consumer")
		return
	}
	if err != nil {
		m.t.Fatalf("close consumer: %v", err)
	}
	co.closed = true
	q := m.queueOf(ci)
	if m.topo == exchange.Shared {
		for _, o := range m.cons {
			if !o.closed {
				return // the shared queue stays open while a consumer does
			}
		}
	}
	m.closedQ[q] = true
	m.queues[q] = nil
}

func (m *model) close() {
	err := m.x.Close()
	if m.closeCalled {
		m.wantErr(err, exchange.ErrClosed, "second Close")
		return
	}
	if err != nil && !errors.Is(err, exchange.ErrLeaked) {
		m.t.Fatalf("close: %v", err)
	}
	m.closeCalled = true
	m.stop(exchange.ErrClosed)
}

// cancelContext cancels the exchange's context and, unless Close ran
// already, waits for the sweep with Close; operations then fail with
// ErrCanceled (ErrClosed if Close stopped the exchange first).
func (m *model) cancelContext() {
	m.cancel()
	if !m.closeCalled {
		if err := m.x.Close(); err != nil && !errors.Is(err, exchange.ErrLeaked) {
			m.t.Fatalf("close after cancel: %v", err)
		}
		m.closeCalled = true
	}
	// The context's stop runs in a goroutine of its own, so Close may stop
	// the exchange first: operations then fail with either error.
	m.stop(nil)
}

// stop models the end of the exchange: queues and open morsels are gone.
func (m *model) stop(why error) {
	if !m.stopped {
		m.stopped, m.stopErr = true, why
	}
	for q := range m.queues {
		m.queues[q] = nil
	}
	for _, pr := range m.prods {
		for q := range pr.open {
			pr.open[q] = nil
		}
	}
}

// unchanged fails unless the exchange's counts are what they were.
func (m *model) unchanged(before exchange.Stats, what string) {
	if after := m.x.Stats(); after != before {
		m.t.Fatalf("%s changed the exchange: %+v -> %+v", what, before, after)
	}
}

// wantStopped fails unless err says the exchange stopped, as the model
// expects: closed, cancelled, or (stopErr nil) either.
func (m *model) wantStopped(err error, what string) {
	if m.stopErr != nil {
		m.wantErr(err, m.stopErr, what)
	} else if !errors.Is(err, exchange.ErrClosed) && !errors.Is(err, exchange.ErrCanceled) {
		m.t.Fatalf("%s: %v, want ErrClosed or ErrCanceled", what, err)
	}
}

func (m *model) wantErr(err, want error, what string) {
	if !errors.Is(err, want) {
		m.t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// check compares the exchange's counts with the model's and every live
// morsel's bytes with its contents.
func (m *model) check() {
	st := m.x.Stats()
	queued, held := 0, 0
	for _, q := range m.queues {
		queued += len(q)
	}
	for _, pr := range m.prods {
		held += len(pr.held)
		for _, mm := range pr.held {
			m.same(mm, "held")
		}
	}
	for _, co := range m.cons {
		held += len(co.held)
		for _, mm := range co.held {
			m.same(mm, "received")
		}
	}
	if st.Queued != queued || st.Outstanding != held {
		m.t.Fatalf("stats %+v; model: %d queued, %d held", st, queued, held)
	}
	if st.Held > st.Budget+64<<10 || st.Held < 0 {
		m.t.Fatalf("held %d bytes, budget %d", st.Held, st.Budget)
	}
}

func (m *model) same(mm *mmorsel, what string) {
	if !bytes.Equal(mm.h.Bytes(), mm.data) {
		m.t.Fatalf("%s morsel %v changed: %x, want %x", what, mm.h, mm.h.Bytes(), mm.data)
	}
}

// finish gives back every morsel the model holds, closes the ends and the
// exchange, and checks that the pool is as it was.
func (m *model) finish() {
	if m.t.Failed() {
		return
	}
	for _, pr := range m.prods {
		for _, mm := range pr.held {
			if err := pr.end.Discard(mm.h); err != nil {
				m.t.Fatalf("final discard: %v", err)
			}
		}
		pr.held = nil
	}
	for _, co := range m.cons {
		for _, mm := range co.held {
			if err := co.end.Release(mm.h); err != nil {
				m.t.Fatalf("final release: %v", err)
			}
		}
		co.held = nil
	}
	if !m.closeCalled {
		if err := m.x.Close(); err != nil {
			m.t.Fatalf("final close: %v", err)
		}
	}
	if st := m.pool.Stats(); st.Used != 0 || st.UsedSegments != 0 {
		m.t.Fatalf("pool after close: %d bytes in %d segments", st.Used, st.UsedSegments)
	}
	if err := m.pool.Close(); err != nil {
		m.t.Fatal(fmt.Errorf("pool close: %w", err))
	}
}
