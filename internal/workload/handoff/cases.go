// The cases: Go benchmarks of the hand-off itself (one at a time, in
// batches, several producers and consumers), and measurements of delivered
// bandwidth, bytes in flight under a slow consumer, cancellation and a
// three-stage pipeline, each over any Transport.

package handoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/pool"
	"github.com/offheap/offheap/vmem"
)

// source is what producers write into morsels.
var source = func() []byte {
	b := make([]byte, 4<<20)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}()

// Fill writes a morsel: source's bytes, with seq in its first 8.
func Fill(b []byte, seq int) {
	copy(b, source)
	if len(b) >= 8 {
		binary.LittleEndian.PutUint64(b, uint64(seq))
	}
}

// Sum reads every byte of a morsel and returns their checksum.
func Sum(b []byte) uint64 {
	var s uint64
	for len(b) >= 8 {
		s ^= binary.LittleEndian.Uint64(b)
		b = b[8:]
	}
	for _, c := range b {
		s = s<<1 ^ uint64(c)
	}
	return s
}

// Handoff returns a Go benchmark of np producers handing b.N morsels of
// size bytes in all to nc consumers through impl, batch at a time (1: one
// at a time). Producers fill each morsel in place, consumers read all of
// it; ns/op is wall time per morsel.
func Handoff(impl string, np, nc, size, batch int) (func(*testing.B), error) {
	mk, ok := kits[impl]
	if !ok {
		return nil, fmt.Errorf("handoff: unknown transport %q (have %v)", impl, Impls)
	}
	return func(b *testing.B) {
		k, err := mk(HandoffConfig(np, nc, size))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.SetBytes(int64(size))
		var wg sync.WaitGroup
		errs := make(chan error, np+nc)
		for i := range nc {
			wg.Go(func() {
				if _, err := k.consume(i, batch); err != nil {
					errs <- err
				}
			})
		}
		b.ResetTimer()
		for i := range np {
			n := b.N / np
			if i < b.N%np {
				n++
			}
			wg.Go(func() {
				if err := k.produce(i, n, size, batch); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		b.StopTimer()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		if err := k.close(); err != nil {
			b.Fatal(err)
		}
	}, nil
}

// HandoffConfig is the shape of Handoff's transports: a budget of 32 MiB
// for the exchange and, for every transport, a queue of 1,024 morsels or
// 32 MiB of them, whichever is fewer (but at least 4).
func HandoffConfig(np, nc, size int) Config {
	return Config{Producers: np, Consumers: nc, MaxMorsel: size, Budget: 32 << 20, Capacity: max(4, min(1024, (32<<20)/size))}
}

// A kit drives one transport's ends in tight loops, without the
// Transport interface's indirect calls, for Handoff.
type kit interface {
	produce(i, count, size, batch int) error // producer i sends count morsels, then closes
	consume(i, batch int) (uint64, error)    // consumer i reads until the end
	close() error
}

var kits = map[string]func(Config) (kit, error){
	"offheap":    func(c Config) (kit, error) { t, err := newExchange(c); return exchangeKit{t}, err },
	"chan-ref":   func(c Config) (kit, error) { return newChanRefKit(c) },
	"chan-bytes": func(c Config) (kit, error) { return newChanBytesKit(c), nil },
	"ring": func(c Config) (kit, error) {
		return ringKit{NewRing(c.Capacity, c.MaxMorsel, c.Producers, c.Consumers)}, nil
	},
}

type exchangeKit struct{ t *exchangeTransport }

func (k exchangeKit) produce(i, count, size, batch int) error {
	pr := k.t.ps[i]
	defer pr.Close()
	if batch == 1 {
		for s := range count {
			m, err := pr.Reserve(size)
			if err != nil {
				return err
			}
			Fill(m.Bytes(), s)
			if err := pr.Send(m); err != nil {
				return err
			}
		}
		return nil
	}
	ms := make([]exchange.Morsel, batch)
	for s := 0; s < count; s += batch {
		ms := ms[:min(batch, count-s)]
		if err := pr.ReserveBatch(ms, size); err != nil {
			return err
		}
		for j, m := range ms {
			Fill(m.Bytes(), s+j)
		}
		if err := pr.SendBatch(ms); err != nil {
			return err
		}
	}
	return nil
}

func (k exchangeKit) consume(i, batch int) (uint64, error) {
	co := k.t.cs[i]
	var sum uint64
	if batch == 1 {
		for {
			m, err := co.Recv()
			if err != nil {
				return sum, eof(err)
			}
			sum += Sum(m.Bytes())
			if err := co.Release(m); err != nil {
				return sum, err
			}
		}
	}
	ms := make([]exchange.Morsel, batch)
	for {
		n, err := co.RecvBatch(ms)
		if err != nil {
			return sum, eof(err)
		}
		for _, m := range ms[:n] {
			sum += Sum(m.Bytes())
		}
		if err := co.ReleaseBatch(ms[:n]); err != nil {
			return sum, err
		}
	}
}

func (k exchangeKit) close() error { return k.t.Close() }

// eof turns the end of the stream into success.
func eof(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// chanRefKit is a channel of pool refs; batches travel as slices of refs,
// recycled through a second channel.
type chanRefKit struct {
	p     *pool.Pool
	one   chan pool.Ref
	many  chan []pool.Ref
	spare chan []pool.Ref
	ended endCount
}

func newChanRefKit(c Config) (*chanRefKit, error) {
	p, err := newPool(c)
	if err != nil {
		return nil, err
	}
	k := &chanRefKit{p: p, one: make(chan pool.Ref, c.Capacity), many: make(chan []pool.Ref, c.Capacity/8+1),
		spare: make(chan []pool.Ref, c.Capacity/8+1+c.Producers)}
	k.ended.n.Store(int32(c.Producers))
	return k, nil
}

func (k *chanRefKit) reserve(size, s int) (pool.Ref, error) {
	r, b, err := k.p.Reserve(size)
	if err != nil {
		return 0, err
	}
	Fill(b, s)
	return r, k.p.Unlatch(r)
}

func (k *chanRefKit) produce(i, count, size, batch int) error {
	defer func() {
		if k.ended.done() {
			close(k.one)
			close(k.many)
		}
	}()
	for s := 0; s < count; s += batch {
		if batch == 1 {
			r, err := k.reserve(size, s)
			if err != nil {
				return err
			}
			k.one <- r
			continue
		}
		var rs []pool.Ref
		select {
		case rs = <-k.spare:
		default:
			rs = make([]pool.Ref, 0, batch)
		}
		rs = rs[:0]
		for j := range min(batch, count-s) {
			r, err := k.reserve(size, s+j)
			if err != nil {
				return err
			}
			rs = append(rs, r)
		}
		k.many <- rs
	}
	return nil
}

func (k *chanRefKit) read(r pool.Ref) (uint64, error) {
	b, err := k.p.Latch(r)
	if err != nil {
		return 0, err
	}
	s := Sum(b)
	_ = k.p.Unlatch(r)
	return s, k.p.Release(r)
}

func (k *chanRefKit) consume(i, batch int) (uint64, error) {
	var sum uint64
	if batch == 1 {
		for r := range k.one {
			s, err := k.read(r)
			if err != nil {
				return sum, err
			}
			sum += s
		}
		return sum, nil
	}
	for rs := range k.many {
		for _, r := range rs {
			s, err := k.read(r)
			if err != nil {
				return sum, err
			}
			sum += s
		}
		select {
		case k.spare <- rs:
		default:
		}
	}
	return sum, nil
}

func (k *chanRefKit) close() error { return k.p.Close() }

// chanBytesKit is a channel of heap copies; batches travel as slices of
// them.
type chanBytesKit struct {
	one   chan []byte
	many  chan [][]byte
	ended endCount
	max   int
}

func newChanBytesKit(c Config) *chanBytesKit {
	k := &chanBytesKit{one: make(chan []byte, c.Capacity), many: make(chan [][]byte, c.Capacity/8+1), max: c.MaxMorsel}
	k.ended.n.Store(int32(c.Producers))
	return k
}

func (k *chanBytesKit) produce(i, count, size, batch int) error {
	defer func() {
		if k.ended.done() {
			close(k.one)
			close(k.many)
		}
	}()
	buf := make([]byte, size)
	for s := 0; s < count; s += batch {
		if batch == 1 {
			Fill(buf, s)
			k.one <- append([]byte(nil), buf...)
			continue
		}
		bs := make([][]byte, min(batch, count-s))
		for j := range bs {
			Fill(buf, s+j)
			bs[j] = append([]byte(nil), buf...)
		}
		k.many <- bs
	}
	return nil
}

func (k *chanBytesKit) consume(i, batch int) (uint64, error) {
	var sum uint64
	if batch == 1 {
		for b := range k.one {
			sum += Sum(b)
		}
		return sum, nil
	}
	for bs := range k.many {
		for _, b := range bs {
			sum += Sum(b)
		}
	}
	return sum, nil
}

func (k *chanBytesKit) close() error { return nil }

type ringKit struct{ r *Ring }

func (k ringKit) produce(i, count, size, batch int) error {
	defer k.r.CloseProducer()
	for s := 0; s < count; {
		pos, n, err := k.r.Claim(min(batch, count-s))
		if err != nil {
			return err
		}
		for j := range n {
			Fill(k.r.Entry(pos + uint64(j))[:size], s+j)
			k.r.Publish(pos+uint64(j), size)
		}
		s += n
	}
	return nil
}

func (k ringKit) consume(i, batch int) (uint64, error) {
	var sum uint64
	for {
		pos, n, err := k.r.Take(batch)
		if err != nil {
			return sum, eof(err)
		}
		for j := range n {
			sum += Sum(k.r.Morsel(pos + uint64(j)))
			k.r.Free(pos + uint64(j))
		}
	}
}

func (k ringKit) close() error { k.r.Cancel(); return nil }

// SlowConsumer sends count morsels of size bytes through t to a consumer
// ten times slower than the producer (it spins 10*wait per morsel, the
// producer wait) and returns the peak bytes in flight (sent and not yet
// released) divided by budget plus one morsel. The bytes are counted by t
// itself (Held), sampled at every hand-off.
func SlowConsumer(t Transport, count, size, budget int, wait time.Duration) (float64, error) {
	errc := make(chan error, 1)
	go func() {
		s := t.Sender(0)
		for i := range count {
			if err := s.Send(size, func(b []byte) { Fill(b, i) }); err != nil {
				errc <- err
				return
			}
			spin(wait)
		}
		errc <- s.Close()
	}()
	r := t.Receiver(0)
	var high atomic.Int64
	for {
		err := r.Recv(func(b []byte) {
			Sum(b)
			high.Store(max(high.Load(), t.Held()))
			spin(10 * wait)
		})
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Cancel()
			<-errc
			return 0, err
		}
	}
	if err := <-errc; err != nil {
		return 0, err
	}
	return float64(high.Load()) / float64(budget+size), nil
}

// Cancel fills t (np producers, nc consumers that work work per morsel)
// for settle, and until it holds a morsel at least, cancels it, and
// returns the seconds until every end has returned and t holds no morsel.
func Cancel(t Transport, np, nc, size int, work, settle time.Duration) (float64, error) {
	var wg sync.WaitGroup
	for i := range np {
		wg.Go(func() {
			s := t.Sender(i)
			for j := 0; ; j++ {
				if s.Send(size, func(b []byte) { Fill(b, j) }) != nil {
					return
				}
			}
		})
	}
	for i := range nc {
		wg.Go(func() {
			r := t.Receiver(i)
			for r.Recv(func(b []byte) { Sum(b); spin(work) }) == nil {
			}
		})
	}
	time.Sleep(settle)
	for wait := time.Now(); t.Held() < int64(size); {
		if time.Since(wait) > 5*time.Second {
			return 0, fmt.Errorf("handoff: %d bytes in flight 5 s after the ends started", t.Held())
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	t.Cancel()
	wg.Wait()
	t.Cancel() // what a producer sent as the first Cancel ran
	for t.Held() != 0 {
		if time.Since(start) > 10*time.Second {
			return 0, fmt.Errorf("handoff: %d bytes still held 10 s after cancel", t.Held())
		}
		time.Sleep(10 * time.Microsecond)
	}
	return time.Since(start).Seconds(), nil
}

// spin busies the CPU for about d, without a system call.
func spin(d time.Duration) {
	for start := time.Now(); time.Since(start) < d; {
	}
}

// PipelineResult is what Pipeline measured.
type PipelineResult struct {
	Seconds, PeakRSSMiB float64
	Rows, Kept          int64
	Sum                 uint64
}

// RowSize is the size of a pipeline row: a key and a value, 8 bytes each.
const RowSize = 16

// Pipeline runs scan -> filter -> aggregate over total bytes of rows: scan
// writes morsels of rows rows into a, filter keeps the rows whose value is
// a multiple of 4 and writes them as morsels into b, aggregate sums the
// kept values. Each stage is one goroutine; a and b have one producer and
// one consumer each. It samples the process's RSS every 2 ms.
func Pipeline(a, b Transport, total int64, rows int) (PipelineResult, error) {
	var res PipelineResult
	morsels := int(max(1, total/int64(rows*RowSize)))
	stop := make(chan struct{})
	peak := make(chan int)
	go sampleRSS(stop, peak)
	start := time.Now()
	errc := make(chan error, 2)
	go func() { errc <- scan(a.Sender(0), morsels, rows) }()
	go func() { errc <- filter(a.Receiver(0), b.Sender(0)) }()
	var err error
	res.Kept, res.Sum, err = aggregate(b.Receiver(0))
	for range 2 {
		err = errors.Join(err, <-errc)
	}
	res.Seconds = time.Since(start).Seconds()
	close(stop)
	res.PeakRSSMiB = float64(<-peak) / (1 << 20)
	res.Rows = int64(morsels) * int64(rows)
	if err != nil {
		a.Cancel()
		b.Cancel()
	}
	return res, err
}

func scan(s Sender, morsels, rows int) error {
	x := uint64(88172645463325252)
	for i := range morsels {
		err := s.Send(rows*RowSize, func(b []byte) {
			for r := range rows {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				binary.LittleEndian.PutUint64(b[r*RowSize:], uint64(i*rows+r))
				binary.LittleEndian.PutUint64(b[r*RowSize+8:], x)
			}
		})
		if err != nil {
			return err
		}
	}
	return s.Close()
}

func keep(b []byte, r int) bool { return binary.LittleEndian.Uint64(b[r*RowSize+8:])%4 == 0 }

func filter(r Receiver, s Sender) error {
	var sendErr error
	for {
		err := r.Recv(func(in []byte) {
			rows, kept := len(in)/RowSize, 0
			for i := range rows {
				if keep(in, i) {
					kept++
				}
			}
			if kept == 0 || sendErr != nil {
				return
			}
			sendErr = s.Send(kept*RowSize, func(out []byte) {
				k := 0
				for i := range rows {
					if keep(in, i) {
						copy(out[k*RowSize:(k+1)*RowSize], in[i*RowSize:])
						k++
					}
				}
			})
		})
		if err == io.EOF {
			return errors.Join(sendErr, s.Close())
		}
		if err != nil || sendErr != nil {
			return errors.Join(err, sendErr)
		}
	}
}

func aggregate(r Receiver) (rows int64, sum uint64, err error) {
	for {
		err := r.Recv(func(b []byte) {
			for i := 0; i+RowSize <= len(b); i += RowSize {
				sum += binary.LittleEndian.Uint64(b[i+8:])
				rows++
			}
		})
		if err == io.EOF {
			return rows, sum, nil
		}
		if err != nil {
			return rows, sum, err
		}
	}
}

// sampleRSS sends the highest RSS it saw every 2 ms until stop closes.
func sampleRSS(stop <-chan struct{}, peak chan<- int) {
	high := 0
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		if n, err := vmem.RSS(); err == nil {
			high = max(high, n)
		}
		select {
		case <-stop:
			peak <- high
			return
		case <-t.C:
		}
	}
}
