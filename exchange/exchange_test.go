package exchange_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/pool"
)

// newPool returns a pool that is closed when the test ends, after checking
// that nothing is left in it.
func newPool(t testing.TB, capacity int) *pool.Pool {
	t.Helper()
	p, err := pool.New(capacity, &pool.Options{MaxCapacity: 256 << 20, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if st := p.Stats(); st.Used != 0 && !t.Failed() {
			t.Errorf("pool holds %d bytes in %d segments at the end", st.Used, st.UsedSegments)
		}
		if err := p.Close(); err != nil && !t.Failed() {
			t.Errorf("pool close: %v", err)
		}
	})
	return p
}

func newExchange(t testing.TB, p *pool.Pool, o *exchange.Options) *exchange.Exchange {
	t.Helper()
	return newExchangeCtx(t, context.Background(), p, o)
}

func newExchangeCtx(t testing.TB, ctx context.Context, p *pool.Pool, o *exchange.Options) *exchange.Exchange {
	t.Helper()
	x, err := exchange.New(ctx, p, o)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// drain receives on co until the end of the stream, calls f with each
// morsel and releases it, and closes co; any other receive error fails t.
func drain(t testing.TB, co *exchange.Consumer, f func(exchange.Morsel)) {
	defer co.Close()
	for {
		m, err := co.Recv()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Error(err)
			return
		}
		f(m)
		_ = co.Release(m)
	}
}

func ends(t testing.TB, x *exchange.Exchange, np, nc int) ([]*exchange.Producer, []*exchange.Consumer) {
	t.Helper()
	ps := make([]*exchange.Producer, np)
	cs := make([]*exchange.Consumer, nc)
	var err error
	for i := range ps {
		if ps[i], err = x.Producer(); err != nil {
			t.Fatal(err)
		}
	}
	for i := range cs {
		if cs[i], err = x.Consumer(); err != nil {
			t.Fatal(err)
		}
	}
	return ps, cs
}

// stamp writes producer pid's sequence number s into m and fills the rest
// with a pattern derived from both; verify checks it.
func stamp(b []byte, pid, s int) {
	var h [16]byte
	binary.LittleEndian.PutUint64(h[:], uint64(pid))
	binary.LittleEndian.PutUint64(h[8:], uint64(s))
	n := copy(b, h[:])
	for i := n; i < len(b); i++ {
		b[i] = byte(pid + s + i)
	}
}

func verify(t testing.TB, b []byte) (pid, s int) {
	if len(b) < 16 {
		t.Fatalf("morsel of %d bytes", len(b))
	}
	pid, s = int(binary.LittleEndian.Uint64(b)), int(binary.LittleEndian.Uint64(b[8:]))
	for i := 16; i < len(b); i++ {
		if b[i] != byte(pid+s+i) {
			t.Fatalf("morsel %d of producer %d: byte %d is %d", s, pid, i, b[i])
		}
	}
	return pid, s
}

// noLeak fails the test if goroutines started during it are still running
// shortly after it ends.
func noLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

func TestOptions(t *testing.T) {
	p := newPool(t, 1<<20)
	bad := []exchange.Options{
		{Topology: 3},
		{Producers: -1},
		{Consumers: 1 << 20},
		{Topology: exchange.Broadcast, Consumers: 33},
		{Budget: -1},
		{QueueLen: 3},
		{QueueLen: 1},
		{Coalesce: -1},
	}
	for _, o := range bad {
		if _, err := exchange.New(context.Background(), p, &o); !errors.Is(err, exchange.ErrInvalid) {
			t.Errorf("New(%+v): %v, want ErrInvalid", o, err)
		}
	}
	if _, err := exchange.New(context.Background(), nil, nil); !errors.Is(err, exchange.ErrInvalid) {
		t.Errorf("New with a nil pool: %v", err)
	}
	x := newExchange(t, p, nil)
	ends(t, x, 1, 1)
	if _, err := x.Consumer(); !errors.Is(err, exchange.ErrInvalid) {
		t.Errorf("a second consumer of one: %v", err)
	}
	closeT(t, x)
	if err := x.Close(); !errors.Is(err, exchange.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// TestErrorText pins the shape of the exchange's errors.
func TestErrorText(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Name: "scan"})
	ps, cs := ends(t, x, 1, 1)
	m, err := ps[0].Commit([]byte("morsel"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ps[0].Send(m); err != nil {
		t.Fatal(err)
	}
	err = ps[0].Send(m)
	if want := fmt.Sprintf("exchange \"scan\": send morsel %v: sent already", m); err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	r, _ := cs[0].Recv()
	_ = cs[0].Release(r)
	_ = x.Close()
}

// TestOwnership checks every misuse of a handle: each fails with its
// sentinel and changes nothing.
func TestOwnership(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, nil)
	ps, cs := ends(t, x, 1, 1)
	pr, co := ps[0], cs[0]
	other := newExchange(t, p, nil)
	ops, _ := ends(t, other, 1, 1)
	foreign, _ := ops[0].Reserve(8)

	held, _ := pr.Reserve(100)
	sent, _ := pr.Commit([]byte("sent"))
	if err := pr.Send(sent); err != nil {
		t.Fatal(err)
	}
	recvd, err := co.Recv()
	if err != nil || string(recvd.Bytes()) != "sent" {
		t.Fatalf("recv: %q %v", recvd.Bytes(), err)
	}
	discarded, _ := pr.Reserve(10)
	if err := pr.Discard(discarded); err != nil {
		t.Fatal(err)
	}
	before := x.Stats()
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"send after send", pr.Send(sent), exchange.ErrSent},
		{"discard after send", pr.Discard(sent), exchange.ErrSent},
		{"send after discard", pr.Send(discarded), exchange.ErrReleased},
		{"discard twice", pr.Discard(discarded), exchange.ErrReleased},
		{"send a received morsel", pr.Send(recvd), exchange.ErrWrongEnd},
		{"release a held morsel", co.Release(held), exchange.ErrWrongEnd},
		{"release a sent handle", co.Release(sent), exchange.ErrWrongEnd},
		{"send a foreign morsel", pr.Send(foreign), exchange.ErrForeign},
		{"release a foreign morsel", co.Release(foreign), exchange.ErrForeign},
		{"send the zero morsel", pr.Send(exchange.Morsel{}), exchange.ErrForeign},
		{"release the zero morsel", co.Release(exchange.Morsel{}), exchange.ErrForeign},
		{"send to a partition", pr.SendTo(0, held), exchange.ErrInvalid},
		{"batch with a repeat", pr.SendBatch([]exchange.Morsel{held, held}), exchange.ErrSent},
		{"batch with a dead one", pr.SendBatch([]exchange.Morsel{held, sent}), exchange.ErrSent},
		{"reserve too much", reserveErr(pr, 1<<40), exchange.ErrInvalid},
		{"reserve a negative size", reserveErr(pr, -1), exchange.ErrInvalid},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
	if after := x.Stats(); after != before {
		t.Errorf("misuse changed the exchange: %+v -> %+v", before, after)
	}
	// The handles that were live still work.
	if err := co.Release(recvd); err != nil {
		t.Fatal(err)
	}
	if err := co.Release(recvd); !errors.Is(err, exchange.ErrReleased) {
		t.Errorf("release twice: %v", err)
	}
	if err := pr.Send(held); err != nil {
		t.Fatal(err)
	}
	m, _ := co.Recv()
	if err := co.ReleaseBatch([]exchange.Morsel{m, m}); !errors.Is(err, exchange.ErrReleased) {
		t.Errorf("release batch with a repeat: %v", err)
	}
	if err := co.ReleaseBatch([]exchange.Morsel{m}); err != nil {
		t.Fatal(err)
	}
	_ = ops[0].Discard(foreign)
	for _, e := range []*exchange.Exchange{x, other} {
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func reserveErr(p *exchange.Producer, n int) error {
	_, err := p.Reserve(n)
	return err
}

// TestTopologies sends from several producers to several consumers and
// checks that each morsel arrives intact, exactly once per consumer that
// should see it, and that the pool is as it was at the end.
func TestTopologies(t *testing.T) {
	for _, topo := range []exchange.Topology{exchange.Shared, exchange.Partitioned, exchange.Broadcast} {
		for _, pc := range [][2]int{{1, 1}, {1, 3}, {3, 1}, {3, 2}} {
			for _, batch := range []bool{false, true} {
				t.Run(fmt.Sprintf("%v/%dx%d/batch=%v", topo, pc[0], pc[1], batch), func(t *testing.T) {
					noLeak(t)
					runTopology(t, topo, pc[0], pc[1], batch)
				})
			}
		}
	}
}

func runTopology(t *testing.T, topo exchange.Topology, np, nc int, batch bool) {
	const perProducer = 3000
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Topology: topo, Producers: np, Consumers: nc, Budget: 64 << 10, QueueLen: 64})
	ps, cs := ends(t, x, np, nc)
	seen := make([][]int32, np) // per producer and sequence: receipts
	for i := range seen {
		seen[i] = make([]int32, perProducer)
	}
	var wg sync.WaitGroup
	errs := make(chan error, np+nc)
	for pid, pr := range ps {
		wg.Go(func() {
			defer pr.Close()
			var pending []exchange.Morsel
			for s := range perProducer {
				m, err := pr.Reserve(16 + (s*7+pid)%300)
				if err != nil {
					errs <- err
					return
				}
				stamp(m.Bytes(), pid, s)
				part := (s + pid) % nc
				if batch {
					pending = append(pending, m)
					if len(pending) < 17 && s < perProducer-1 {
						continue
					}
					if topo == exchange.Partitioned {
						// a batch goes to one partition: that of its first morsel
						err = pr.SendBatchTo(part, pending)
					} else {
						err = pr.SendBatch(pending)
					}
					pending = pending[:0]
				} else if topo == exchange.Partitioned {
					err = pr.SendTo(part, m)
				} else {
					err = pr.Send(m)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for ci, co := range cs {
		wg.Go(func() {
			defer co.Close()
			ms := make([]exchange.Morsel, 8)
			for {
				n := 1
				var err error
				if batch {
					n, err = co.RecvBatch(ms)
				} else {
					ms[0], err = co.Recv()
				}
				if err == io.EOF {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				for _, m := range ms[:n] {
					pid, s := verify(t, m.Bytes())
					atomic.AddInt32(&seen[pid][s], 1)
					_ = ci
				}
				if batch {
					err = co.ReleaseBatch(ms[:n])
				} else {
					err = co.Release(ms[0])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := int32(1)
	if topo == exchange.Broadcast {
		want = int32(nc)
	}
	for pid := range seen {
		for s, n := range seen[pid] {
			if n != want {
				t.Fatalf("morsel %d of producer %d received %d times, want %d", s, pid, n, want)
			}
		}
	}
	st := x.Stats()
	if st.Sent != np*perProducer || st.Received != np*perProducer*int(want) || st.Released != st.Received || st.Outstanding != 0 {
		t.Fatalf("stats %+v", st)
	}
	closeT(t, x)
}

// TestBudgetBound runs producers against a consumer ten times slower and
// checks, at every hand-off, that the bytes in flight stay within the
// budget plus one morsel (partitions have budgets of their own, checked in
// the checked build), and that the pool never holds
// more than that, the free rings' half budget and the morsels the
// producers are filling.
func TestBudgetBound(t *testing.T) {
	for _, topo := range []exchange.Topology{exchange.Shared, exchange.Partitioned} {
		t.Run(topo.String(), func(t *testing.T) {
			noLeak(t)
			const (
				budget    = 64 << 10
				partition = 24 << 10
				maxMorsel = 8 << 10
				np        = 3
				count     = 300
			)
			p := newPool(t, 1<<20)
			nc := 1
			if topo == exchange.Partitioned {
				nc = 2
			}
			x := newExchange(t, p, &exchange.Options{Topology: topo, Producers: np, Consumers: nc, Budget: budget, PartitionBudget: partition})
			ps, cs := ends(t, x, np, nc)
			var wg sync.WaitGroup
			for pid, pr := range ps {
				wg.Go(func() {
					defer pr.Close()
					for s := range count {
						m, err := pr.Reserve(16 + (s*131+pid*17)%(maxMorsel-16))
						if err != nil {
							t.Error(err)
							return
						}
						stamp(m.Bytes(), pid, s)
						if topo == exchange.Partitioned {
							err = pr.SendTo(s%nc, m)
						} else {
							err = pr.Send(m)
						}
						if err != nil {
							t.Error(err)
							return
						}
						time.Sleep(20 * time.Microsecond)
					}
				})
			}
			var peak, peakPool atomic.Int64
			for _, co := range cs {
				wg.Go(func() {
					drain(t, co, func(m exchange.Morsel) {
						verify(t, m.Bytes())
						held := int64(x.Stats().Held)
						peak.Store(max(peak.Load(), held))
						if held > budget+maxMorsel {
							t.Errorf("exchange holds %d bytes, budget %d + morsel %d", held, budget, maxMorsel)
						}
						used := int64(p.Stats().Used)
						peakPool.Store(max(peakPool.Load(), used))
						if used > budget+budget/2+(np+1)*maxMorsel { // in flight, the free rings, the producers' morsels
							t.Errorf("pool holds %d bytes", used)
						}
						time.Sleep(time.Duration(np*nc) * 200 * time.Microsecond) // ten times slower than the producers
					})
				})
			}
			wg.Wait()
			t.Logf("peak held %d, peak pool %d, budget %d, waits %d", peak.Load(), peakPool.Load(), budget, x.Stats().Waits)
			if peak.Load() < budget/2 {
				t.Errorf("peak held %d: the slow consumer never filled the budget", peak.Load())
			}
			closeT(t, x)
		})
	}
}

// maxSegment bounds the segment a morsel of at most n bytes may ride, which
// is what counts against the budget: its size class is at most 1.5n (above
// 4 KiB; n+63 below), and a reused segment may be twice its class.
func maxSegment(n int) int { return 2 * max(n+63, n*3/2) }

// TestBudgetRandom runs random exchanges (topology, ends, budgets, morsel
// sizes up to twice the budget, consumers that hold morsels a while) to the
// end: every morsel arrives, no end hangs, and the bytes in flight stay
// within the budget plus one morsel's segment at every hand-off.
func TestBudgetRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 24 {
		o := exchange.Options{
			Topology:  exchange.Topology(r.IntN(3)),
			Producers: 1 + r.IntN(3),
			Consumers: 1 + r.IntN(3),
			Budget:    1<<10 + r.IntN(16<<10),
			QueueLen:  2 << r.IntN(6),
		}
		if o.Topology == exchange.Partitioned {
			o.PartitionBudget = 512 + r.IntN(o.Budget)
		}
		maxSize := 2 * o.Budget
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			noLeak(t)
			p := newPool(t, 1<<20)
			x := newExchange(t, p, &o)
			ps, cs := ends(t, x, o.Producers, o.Consumers)
			const count = 200
			var wg sync.WaitGroup
			var got atomic.Int64
			for pid, pr := range ps {
				seed := r.Uint64()
				wg.Go(func() {
					r := rand.New(rand.NewPCG(seed, 0))
					defer pr.Close()
					for s := range count {
						m, err := pr.Reserve(16 + r.IntN(maxSize))
						if err != nil {
							t.Error(err)
							return
						}
						stamp(m.Bytes(), pid, s)
						if o.Topology == exchange.Partitioned {
							err = pr.SendTo(r.IntN(o.Consumers), m)
						} else {
							err = pr.Send(m)
						}
						if err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			for _, co := range cs {
				seed := r.Uint64()
				wg.Go(func() {
					r := rand.New(rand.NewPCG(seed, 0))
					drain(t, co, func(m exchange.Morsel) {
						verify(t, m.Bytes())
						if held := x.Stats().Held; held > o.Budget+maxSegment(maxSize) {
							t.Errorf("%d bytes in flight, budget %d (%+v)", held, o.Budget, o)
						}
						if r.IntN(8) == 0 {
							time.Sleep(50 * time.Microsecond)
						}
						got.Add(1)
					})
				})
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				buf := make([]byte, 1<<20)
				t.Fatalf("%+v hung:\n%s", o, buf[:runtime.Stack(buf, true)])
			}
			want := int64(o.Producers * count)
			if o.Topology == exchange.Broadcast {
				want *= int64(o.Consumers)
			}
			if got.Load() != want {
				t.Fatalf("%+v: %d morsels received, want %d", o, got.Load(), want)
			}
			closeT(t, x)
		})
	}
}

// TestLeasedCredit checks that budget one producer leased and left unused
// while idle neither lets the bytes in flight exceed the budget plus one
// morsel nor keeps another producer from sending a morsel alone.
func TestLeasedCredit(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Producers: 2, Budget: 8 << 10})
	ps, cs := ends(t, x, 2, 1)
	m, _ := ps[0].Reserve(10) // ps[0] leases a chunk, spends 64 bytes of it, then idles
	if err := ps[0].Send(m); err != nil {
		t.Fatal(err)
	}
	r, _ := cs[0].Recv()
	_ = cs[0].Release(r)
	big := func() exchange.Morsel {
		m, err := ps[1].Reserve(7 << 10)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if err := ps[1].Send(big()); err != nil { // alone in flight: let through
		t.Fatal(err)
	}
	blocked := make(chan error)
	go func() { blocked <- ps[1].Send(big()) }()
	select {
	case err := <-blocked:
		t.Fatalf("a second 7 KiB morsel went over an 8 KiB budget: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	if held := x.Stats().Held; held > 8<<10+7<<10 {
		t.Fatalf("%d bytes in flight", held)
	}
	r, _ = cs[0].Recv()
	_ = cs[0].Release(r)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	r, _ = cs[0].Recv()
	_ = cs[0].Release(r)
	closeT(t, x)
}

// TestPartitionBudget checks that a full partition blocks its producer
// while another partition still takes morsels.
func TestPartitionBudget(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Topology: exchange.Partitioned, Consumers: 2, Budget: 1 << 20, PartitionBudget: 1024})
	ps, cs := ends(t, x, 1, 2)
	for range 4 {
		m, _ := ps[0].Reserve(256)
		if err := ps[0].SendTo(0, m); err != nil {
			t.Fatal(err)
		}
	}
	blocked := make(chan error)
	m, _ := ps[0].Reserve(256)
	go func() { blocked <- ps[0].SendTo(0, m) }()
	select {
	case err := <-blocked:
		t.Fatalf("send over the partition budget returned %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	r, _ := cs[0].Recv()
	if err := cs[0].Release(r); err != nil {
		t.Fatal(err)
	}
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	m, _ = ps[0].Reserve(256)
	if err := ps[0].SendTo(1, m); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil && !errors.Is(err, exchange.ErrLeaked) {
		t.Fatal(err)
	}
}

// TestCancel cancels an exchange with morsels in every state: reserved and
// not sent, queued, received, received and being read, and with a producer
// parked on a full budget and a consumer parked on an empty partition.
// Queued morsels go back to the pool at once, parked ends return with the
// cause, the held ones stay intact until handed in, and then the pool is as
// it was.
func TestCancel(t *testing.T) {
	noLeak(t)
	p := newPool(t, 1<<20)
	base := p.Stats().Used
	ctx, cancel := context.WithCancelCause(context.Background())
	x := newExchangeCtx(t, ctx, p, &exchange.Options{Topology: exchange.Partitioned, Producers: 2, Consumers: 2, Budget: 8 << 10})
	ps, cs := ends(t, x, 2, 2)
	unsent, _ := ps[0].Reserve(1000)
	stamp(unsent.Bytes(), 0, 0)
	for s := 1; s <= 4; s++ {
		m, _ := ps[0].Reserve(1000)
		stamp(m.Bytes(), 0, s)
		if err := ps[0].SendTo(0, m); err != nil {
			t.Fatal(err)
		}
	}
	received, _ := cs[0].Recv()
	pinned, _ := cs[0].Recv()
	view := pinned.Bytes()
	parked := make(chan error, 2)
	go func() { // fills the budget, then parks
		for {
			m, err := ps[1].Reserve(2000)
			if err == nil {
				err = ps[1].SendTo(0, m)
			}
			if err != nil {
				parked <- err
				return
			}
		}
	}()
	go func() { // parks on an empty partition
		_, err := cs[1].Recv()
		parked <- err
	}()
	for x.Stats().Waits < 2 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(10 * time.Millisecond)
	if st := x.Stats(); st.Queued == 0 {
		t.Fatalf("nothing queued before the cancel: %+v", st)
	}
	cause := errors.New("query cancelled")
	cancel(cause)
	for range 2 {
		select {
		case err := <-parked:
			if !errors.Is(err, exchange.ErrCanceled) || !errors.Is(err, cause) {
				t.Errorf("parked end returned %v, want ErrCanceled and the cause", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a parked end did not return after cancellation")
		}
	}
	// The cancellation sweeps in its own goroutine, after waking the parked
	// ends; Close waits for it. Then only the three morsels the test holds
	// are left (the checked build reports them).
	if err := x.Close(); err != nil && !(check.On && errors.Is(err, exchange.ErrLeaked)) {
		t.Fatal(err)
	}
	if st := x.Stats(); st.Queued != 0 || st.Outstanding != 3 {
		t.Errorf("after cancel: %+v", st)
	}
	if used := p.Stats().Used; used != base+3*1024 {
		t.Errorf("pool holds %d bytes after cancel, want %d for the 3 held morsels", used, base+3*1024)
	}
	if _, s := verify(t, view); s != 2 {
		t.Errorf("the pinned view changed: morsel %d", s)
	}
	if err := ps[0].SendTo(0, unsent); !errors.Is(err, exchange.ErrCanceled) {
		t.Errorf("send after cancel: %v", err)
	}
	if _, err := ps[0].Reserve(10); !errors.Is(err, exchange.ErrCanceled) {
		t.Errorf("reserve after cancel: %v", err)
	}
	if _, err := cs[0].Recv(); !errors.Is(err, exchange.ErrCanceled) {
		t.Errorf("recv after cancel: %v", err)
	}
	for _, m := range []exchange.Morsel{received, pinned} {
		if err := cs[0].Release(m); err != nil {
			t.Errorf("release after cancel: %v", err)
		}
	}
	if used := p.Stats().Used; used != base {
		t.Errorf("pool holds %d bytes after every morsel was handed in, had %d", used, base)
	}
}

// TestCloseRaces stops exchanges of every topology, by Close or by
// cancelling the context, while producers and consumers are busy sending
// and receiving, one at a time or in batches, some of them closing their
// ends: every end returns an error rather than hanging or faulting, and
// once they have handed in what they held the pool is as it was.
func TestCloseRaces(t *testing.T) {
	configs := []exchange.Options{
		{Producers: 2, Consumers: 2, Budget: 16 << 10, QueueLen: 8},
		{Topology: exchange.Partitioned, Producers: 2, Consumers: 3, Budget: 32 << 10, PartitionBudget: 8 << 10},
		{Topology: exchange.Broadcast, Producers: 2, Consumers: 3, Budget: 16 << 10, QueueLen: 8},
		{Producers: 1, Consumers: 1, Budget: 8 << 10},
		{Producers: 2, Consumers: 1, Coalesce: 512, QueueLen: 4},
	}
	for round := range 40 {
		o := configs[round%len(configs)]
		t.Run(fmt.Sprintf("%d/%v", round, o.Topology), func(t *testing.T) {
			noLeak(t)
			closeRace(t, o, round)
		})
	}
}

func closeRace(t *testing.T, o exchange.Options, round int) {
	p := newPool(t, 1<<20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	x := newExchangeCtx(t, ctx, p, &o)
	ps, cs := ends(t, x, o.Producers, o.Consumers)
	stopped := func(err error) bool {
		return errors.Is(err, exchange.ErrClosed) || errors.Is(err, exchange.ErrCanceled) || errors.Is(err, exchange.ErrNoReader)
	}
	batch := round%3 == 1
	var wg sync.WaitGroup
	for pid, pr := range ps {
		wg.Go(func() {
			ms := make([]exchange.Morsel, 5)
			for s := 0; ; s++ {
				var err error
				if batch {
					if err = pr.ReserveBatch(ms, 100+s%300); err == nil {
						for i, m := range ms {
							stamp(m.Bytes(), pid, s*len(ms)+i)
						}
						if o.Topology == exchange.Partitioned {
							err = pr.SendBatchTo(s%o.Consumers, ms)
						} else {
							err = pr.SendBatch(ms)
						}
					}
				} else {
					var m exchange.Morsel
					if m, err = pr.Reserve(100 + s%900); err == nil {
						stamp(m.Bytes(), pid, s)
						if o.Topology == exchange.Partitioned {
							err = pr.SendTo(s%o.Consumers, m)
						} else {
							err = pr.Send(m)
						}
					}
				}
				if err != nil {
					if !stopped(err) {
						t.Error(err)
					}
					return
				}
			}
		})
	}
	for ci, co := range cs {
		wg.Go(func() {
			ms := make([]exchange.Morsel, 4)
			for k := 0; ; k++ {
				if ci == 0 && round%4 == 3 && k == 50 {
					_ = co.Close() // one consumer leaves early
				}
				n, err := co.RecvBatch(ms[:1+k%4])
				if err != nil {
					if !stopped(err) && err != io.EOF {
						t.Error(err)
					}
					return
				}
				for _, m := range ms[:n] {
					if o.Coalesce == 0 {
						verify(t, m.Bytes())
					}
				}
				if err := co.ReleaseBatch(ms[:n]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(time.Duration(1+round%5) * time.Millisecond)
	var err error
	if round%2 == 0 {
		err = x.Close()
	} else {
		cancel()
	}
	wg.Wait()
	// Ends may have held a morsel each when Close ran: the checked build reports them.
	if err != nil && !(check.On && errors.Is(err, exchange.ErrLeaked)) {
		t.Fatal(err)
	}
	if round%2 == 1 {
		closeT(t, x)
	}
	if st := p.Stats(); st.Used != 0 {
		t.Fatalf("pool holds %d bytes after the exchange stopped and every end returned", st.Used)
	}
}

// TestEndOfStream checks that consumers drain what is queued and then see
// io.EOF, and that a trickle producer's coalesced morsels arrive at Flush.
func TestEndOfStream(t *testing.T) {
	noLeak(t)
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Coalesce: 1024, Consumers: 2})
	ps, cs := ends(t, x, 1, 2)
	for i := range 10 {
		m, _ := ps[0].Commit([]byte{byte(i), byte(i)})
		if err := ps[0].Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if st := x.Stats(); st.Queued != 0 {
		t.Fatalf("short morsels were sent before the coalesced one filled: %+v", st)
	}
	got := make(chan []byte)
	go func() {
		m, err := cs[0].Recv()
		if err != nil {
			t.Error(err)
		}
		b := append([]byte{}, m.Bytes()...)
		_ = cs[0].Release(m)
		got <- b
	}()
	if err := ps[0].Flush(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; len(b) != 20 || b[0] != 0 || b[19] != 9 {
		t.Fatalf("coalesced morsel %v", b)
	}
	m, _ := ps[0].Commit(make([]byte, 2000)) // longer than Coalesce: sent as it is
	if err := ps[0].Send(m); err != nil {
		t.Fatal(err)
	}
	if err := ps[0].Close(); err != nil {
		t.Fatal(err)
	}
	m, err := cs[1].Recv()
	if err != nil || m.Len() != 2000 {
		t.Fatalf("recv: %d bytes, %v", m.Len(), err)
	}
	_ = cs[1].Release(m)
	for _, c := range cs {
		if _, err := c.Recv(); err != io.EOF {
			t.Fatalf("recv after the producers closed: %v", err)
		}
	}
	closeT(t, x)
}

// TestConsumerClose checks that morsels queued for a consumer that closes
// are released and that sends to it fail with ErrNoReader.
func TestConsumerClose(t *testing.T) {
	p := newPool(t, 1<<20)
	for _, topo := range []exchange.Topology{exchange.Partitioned, exchange.Broadcast} {
		x := newExchange(t, p, &exchange.Options{Topology: topo, Consumers: 2})
		ps, cs := ends(t, x, 1, 2)
		send := func(part int) error {
			m, _ := ps[0].Reserve(500)
			if topo == exchange.Partitioned {
				return ps[0].SendTo(part, m)
			}
			return ps[0].Send(m)
		}
		for range 3 {
			if err := send(0); err != nil {
				t.Fatal(err)
			}
		}
		if err := cs[0].Close(); err != nil {
			t.Fatal(err)
		}
		if topo == exchange.Partitioned {
			if err := send(0); !errors.Is(err, exchange.ErrNoReader) {
				t.Errorf("%v: send to a closed partition: %v", topo, err)
			}
		}
		if err := cs[1].Close(); err != nil {
			t.Fatal(err)
		}
		if err := send(1); !errors.Is(err, exchange.ErrNoReader) {
			t.Errorf("%v: send with every consumer closed: %v", topo, err)
		}
		closeT(t, x)
		if st := p.Stats(); st.Used != 0 {
			t.Fatalf("%v: pool holds %d bytes", topo, st.Used)
		}
	}
}

// TestCloseWakesBudgetWaiter checks that a producer parked on a full budget
// returns ErrNoReader when the last consumer closes while still holding the
// morsels that fill it, and that those can be released afterwards.
func TestCloseWakesBudgetWaiter(t *testing.T) {
	noLeak(t)
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Budget: 4 << 10})
	ps, cs := ends(t, x, 1, 1)
	var held []exchange.Morsel
	for range 4 {
		m, _ := ps[0].Reserve(1000)
		if err := ps[0].Send(m); err != nil {
			t.Fatal(err)
		}
		r, err := cs[0].Recv()
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, r)
	}
	blocked := make(chan error)
	go func() {
		m, _ := ps[0].Reserve(1000)
		blocked <- ps[0].Send(m)
	}()
	for x.Stats().Waits == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := cs[0].Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, exchange.ErrNoReader) {
			t.Fatalf("blocked send returned %v, want ErrNoReader", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the producer stayed parked after the last consumer closed")
	}
	for _, m := range held {
		if err := cs[0].Release(m); err != nil {
			t.Fatal(err)
		}
	}
	closeT(t, x)
}

// TestBroadcastRefcount checks that a broadcast morsel is freed once, after
// its last consumer releases it, whatever the order.
func TestBroadcastRefcount(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Topology: exchange.Broadcast, Consumers: 3})
	ps, cs := ends(t, x, 1, 3)
	m, _ := ps[0].Commit(make([]byte, 4000))
	if err := ps[0].Send(m); err != nil {
		t.Fatal(err)
	}
	if err := ps[0].Close(); err != nil {
		t.Fatal(err)
	}
	got := make([]exchange.Morsel, 3)
	for i, c := range cs {
		var err error
		if got[i], err = c.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	used := p.Stats().Used
	for _, i := range []int{2, 0} {
		if err := cs[i].Release(got[i]); err != nil {
			t.Fatal(err)
		}
		if err := cs[i].Release(got[i]); !errors.Is(err, exchange.ErrReleased) {
			t.Fatalf("second release by consumer %d: %v", i, err)
		}
		if p.Stats().Used != used {
			t.Fatalf("released before its last consumer did")
		}
	}
	if err := cs[0].Release(got[1]); !errors.Is(err, exchange.ErrReleased) {
		t.Fatalf("consumer 0 released consumer 1's share: %v", err)
	}
	if err := cs[1].Release(got[1]); err != nil {
		t.Fatal(err)
	}
	if p.Stats().Used != 0 {
		t.Fatalf("pool holds %d bytes after the last release", p.Stats().Used)
	}
	closeT(t, x)
}

// TestPoolFull checks that a reserve that finds the pool full fails with
// the pool's sentinel and changes nothing.
func TestPoolFull(t *testing.T) {
	p, err := pool.New(64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	x := newExchange(t, p, nil)
	ps, _ := ends(t, x, 1, 1)
	m, err := ps[0].Reserve(40 << 10)
	if err != nil {
		t.Fatal(err)
	}
	before, pst := x.Stats(), p.Stats()
	if _, err := ps[0].Reserve(40 << 10); !errors.Is(err, pool.ErrFull) {
		t.Fatalf("reserve over the pool: %v", err)
	}
	if x.Stats() != before || p.Stats().Used != pst.Used {
		t.Fatalf("a failed reserve changed something")
	}
	_ = ps[0].Discard(m)
	closeT(t, x)
}

// TestLeakReport checks that the checked build reports morsels never
// released when the exchange closes.
func TestLeakReport(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, nil)
	ps, _ := ends(t, x, 1, 1)
	m, _ := ps[0].Reserve(100)
	err := x.Close()
	if check.On != errors.Is(err, exchange.ErrLeaked) {
		t.Fatalf("close with a morsel held: %v (checked build: %v)", err, check.On)
	}
	_ = ps[0].Discard(m)
}

// TestAllocs checks that a hand-off allocates nothing, one at a time or in
// batches, on the 1:1 fast path and on the general paths of every topology.
func TestAllocs(t *testing.T) {
	if check.On {
		t.Skip("the checked build's invariant checks allocate")
	}
	p := newPool(t, 1<<20)
	for _, o := range []exchange.Options{
		{},
		{Producers: 2, Consumers: 2},
		{Topology: exchange.Partitioned, Consumers: 2},
		{Topology: exchange.Broadcast, Consumers: 2},
		{Coalesce: 256},
	} {
		x := newExchange(t, p, &o)
		ps, cs := ends(t, x, max(o.Producers, 1), max(o.Consumers, 1))
		send := func(m exchange.Morsel) {
			if o.Topology == exchange.Partitioned {
				_ = ps[0].SendTo(1, m)
			} else {
				_ = ps[0].Send(m)
			}
		}
		readers := cs[:1]
		switch o.Topology {
		case exchange.Partitioned:
			readers = cs[1:]
		case exchange.Broadcast:
			readers = cs
		}
		one := func() {
			m, _ := ps[0].Reserve(64)
			send(m)
			if o.Coalesce > 0 {
				_ = ps[0].Flush()
			}
			for _, c := range readers {
				m, _ = c.Recv()
				_ = c.Release(m)
			}
		}
		ms := make([]exchange.Morsel, 16)
		batch := func() {
			_ = ps[0].ReserveBatch(ms, 64)
			if o.Topology == exchange.Partitioned {
				_ = ps[0].SendBatchTo(1, ms)
			} else {
				_ = ps[0].SendBatch(ms)
			}
			_ = ps[0].Flush()
			for _, c := range readers {
				for bytes := 0; bytes < len(ms)*64; {
					n, _ := c.RecvBatch(ms)
					for _, m := range ms[:n] {
						bytes += m.Len()
					}
					_ = c.ReleaseBatch(ms[:n])
				}
			}
		}
		for name, f := range map[string]func(){"one": one, "batch": batch} {
			f()
			if a := testing.AllocsPerRun(200, f); a != 0 {
				t.Errorf("%+v %s: %v allocs per hand-off", o, name, a)
			}
		}
		closeT(t, x)
	}
}

// TestOneMorselAlone has several producers send morsels that are each larger
// than the budget, so only a morsel alone may be in flight: a consumer that
// holds one finds no other. Two producers that each found nothing in flight
// and each sent a morsel alone would put two in flight.
func TestOneMorselAlone(t *testing.T) {
	noLeak(t)
	const size, count = 16 << 10, 2000
	p := newPool(t, 4<<20)
	x := newExchange(t, p, &exchange.Options{Producers: 4, Consumers: 2, Budget: 1 << 10})
	ps, cs := ends(t, x, 4, 2)
	var wg sync.WaitGroup
	for _, pr := range ps {
		wg.Go(func() {
			defer pr.Close()
			for range count {
				m, err := pr.Reserve(size)
				if err == nil {
					err = pr.Send(m)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var worst atomic.Int64
	for _, co := range cs {
		wg.Go(func() {
			drain(t, co, func(exchange.Morsel) {
				if held := int64(x.Stats().Held); held > worst.Load() {
					worst.Store(held)
				}
			})
		})
	}
	wg.Wait()
	if w := worst.Load(); w > size {
		t.Fatalf("%d bytes in flight with every morsel %d bytes over a budget of 1 KiB: more than one morsel alone", w, size)
	}
}

// TestBatchOverBudget sends, with nothing in flight, a batch many times the
// budget: only one morsel alone may go over it, so the consumer never finds
// more than the budget plus one morsel in flight. (The one-to-one batch fast
// path once let the whole batch through when nothing was in flight.)
func TestBatchOverBudget(t *testing.T) {
	noLeak(t)
	const budget, size, count = 4 << 10, 1 << 10, 64
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Budget: budget})
	ps, cs := ends(t, x, 1, 1)
	ms := make([]exchange.Morsel, count)
	if err := ps[0].ReserveBatch(ms, size); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() {
		sent <- ps[0].SendBatch(ms)
		ps[0].Close()
	}()
	n := 0
	drain(t, cs[0], func(exchange.Morsel) {
		n++
		if held := x.Stats().Held; held > budget+size {
			t.Fatalf("%d bytes in flight after a batch of %d morsels of %d bytes; budget %d", held, count, size, budget)
		}
	})
	if err := <-sent; err != nil || n != count {
		t.Fatalf("sent a batch of %d: %v; received %d", count, err, n)
	}
	closeT(t, x)
}

// TestFlushPastClosedPartition coalesces a short morsel for each of two
// partitions and closes the first partition's consumer: Flush (or the
// producer's Close) reports ErrNoReader for it but still delivers the second
// partition's morsel. (flush once stopped at the first error, and the
// second consumer saw io.EOF without its morsel.)
func TestFlushPastClosedPartition(t *testing.T) {
	for _, op := range []string{"flush", "close"} {
		t.Run(op, func(t *testing.T) {
			p := newPool(t, 1<<20)
			x := newExchange(t, p, &exchange.Options{Topology: exchange.Partitioned, Consumers: 2, Coalesce: 256})
			ps, cs := ends(t, x, 1, 2)
			for part := range 2 {
				m, err := ps[0].Commit([]byte("short"))
				if err == nil {
					err = ps[0].SendTo(part, m)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := cs[0].Close(); err != nil {
				t.Fatal(err)
			}
			var err error
			if op == "flush" {
				err = ps[0].Flush()
			} else {
				err = ps[0].Close()
			}
			if !errors.Is(err, exchange.ErrNoReader) {
				t.Fatalf("%s with partition 0 closed: %v, want ErrNoReader", op, err)
			}
			got := make(chan exchange.Morsel, 1)
			go func() {
				m, err := cs[1].Recv()
				if err != nil {
					t.Errorf("partition 1 after %s: %v", op, err)
				}
				got <- m
			}()
			var m exchange.Morsel
			select {
			case m = <-got:
			case <-time.After(time.Second):
				x.Close() // wakes the Recv
				<-got
				t.Fatalf("partition 1 got nothing within a second of the %s", op)
			}
			if t.Failed() {
				return
			}
			if string(m.Bytes()) != "short" {
				t.Fatalf("partition 1 got %q, want %q", m.Bytes(), "short")
			}
			if err := cs[1].Release(m); err != nil {
				t.Fatal(err)
			}
			closeT(t, x)
		})
	}
}

// TestCancelProducerCloseParked cancels the exchange while a producer's
// Close is parked flushing its open coalescing morsel for the budget, with
// records in its stash: the stop sweeps the stash, and Close must leave it
// alone. (Close once returned the stash to the pool after a flush that the
// stop had ended, racing the sweep: -race reports it, and the checked build
// finds a segment returned twice.)
func TestCancelProducerCloseParked(t *testing.T) {
	noLeak(t)
	p := newPool(t, 1<<20)
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		x := newExchangeCtx(t, ctx, p, &exchange.Options{Coalesce: 128, Budget: 128})
		pr, err := x.Producer()
		if err != nil {
			t.Fatal(err)
		}
		m, err := pr.Reserve(128) // fills the budget: nobody receives it
		if err == nil {
			err = pr.Send(m)
		}
		for range 8 { // records for the stash
			if err != nil {
				t.Fatal(err)
			}
			if m, err = pr.Reserve(64); err == nil {
				err = pr.Discard(m)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
		if m, err = pr.Commit([]byte("x")); err == nil {
			err = pr.Send(m) // coalesced: waits in the open morsel
		}
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan error, 1)
		go func() { closed <- pr.Close() }()
		for x.Stats().Waits == 0 {
			runtime.Gosched()
		}
		cancel()
		if err := <-closed; !errors.Is(err, exchange.ErrCanceled) {
			t.Fatalf("producer close parked at the cancel: %v, want ErrCanceled", err)
		}
		closeT(t, x)
		if used := p.Stats().Used; used != 0 {
			t.Fatalf("pool holds %d bytes after the cancel", used)
		}
	}
}

// TestBroadcastReleaseBeforeRecv has a broadcast consumer release a morsel
// another consumer received and it has not yet: the handle is the same at
// every consumer, so only the record can tell, and the release must fail
// with ErrWrongEnd and change nothing. (It once cleared the consumer's bit,
// so the other consumer's release freed the record while it was still in
// this consumer's queue, which then received a freed segment.)
func TestBroadcastReleaseBeforeRecv(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Topology: exchange.Broadcast, Consumers: 2})
	ps, cs := ends(t, x, 1, 2)
	m, err := ps[0].Commit([]byte("every consumer sees this"))
	if err == nil {
		err = ps[0].Send(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	a, err := cs[0].Recv()
	if err != nil {
		t.Fatal(err)
	}
	before := x.Stats()
	if err := cs[1].Release(a); !errors.Is(err, exchange.ErrWrongEnd) {
		t.Fatalf("consumer 1 releases a morsel it has not received: %v, want ErrWrongEnd", err)
	}
	if err := cs[1].ReleaseBatch([]exchange.Morsel{a}); !errors.Is(err, exchange.ErrWrongEnd) {
		t.Fatalf("consumer 1 batch-releases a morsel it has not received: %v, want ErrWrongEnd", err)
	}
	if after := x.Stats(); after != before {
		t.Fatalf("a bad release changed the stats: %+v, then %+v", before, after)
	}
	if err := cs[0].Release(a); err != nil {
		t.Fatal(err)
	}
	b, err := cs[1].Recv()
	if err != nil {
		t.Fatal(err)
	}
	if string(b.Bytes()) != "every consumer sees this" {
		t.Fatalf("consumer 1 got %q", b.Bytes())
	}
	if err := cs[1].Release(b); err != nil {
		t.Fatal(err)
	}
	closeT(t, x)
}

// TestSentCoalesced uses a producer's handle after sending it into the open
// coalescing morsel: Send and Discard fail with ErrSent, as for a morsel sent
// alone, and change nothing. (They once said ErrReleased: the copied-out
// record went back to the stash as if discarded.)
func TestSentCoalesced(t *testing.T) {
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Coalesce: 256})
	pr, err := x.Producer()
	if err != nil {
		t.Fatal(err)
	}
	m, err := pr.Commit([]byte("short"))
	if err == nil {
		err = pr.Send(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	before := x.Stats()
	if err := pr.Send(m); !errors.Is(err, exchange.ErrSent) {
		t.Errorf("second send of a coalesced morsel: %v, want ErrSent", err)
	}
	if err := pr.SendBatch([]exchange.Morsel{m}); !errors.Is(err, exchange.ErrSent) {
		t.Errorf("batch send of a coalesced morsel: %v, want ErrSent", err)
	}
	if err := pr.Discard(m); !errors.Is(err, exchange.ErrSent) {
		t.Errorf("discard of a coalesced morsel: %v, want ErrSent", err)
	}
	if after := x.Stats(); after != before {
		t.Errorf("a dead handle changed the stats: %+v, then %+v", before, after)
	}
	closeT(t, x)
}

// TestEndAfterLastFlush closes one producer while another's Close is parked
// flushing its open coalescing morsel for the budget: the consumer must get
// that morsel before io.EOF. (A producer was once counted closed before its
// flush, so the other's Close ended the stream and the consumer saw io.EOF
// while the flushed morsel was still on its way: it was lost.)
func TestEndAfterLastFlush(t *testing.T) {
	noLeak(t)
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Producers: 2, Coalesce: 64, Budget: 64})
	ps, cs := ends(t, x, 2, 1)
	m, err := ps[0].Commit([]byte("first, alone"))
	if err == nil {
		err = ps[0].Send(m)
	}
	if err == nil {
		err = ps[0].Flush() // fills the budget
	}
	if err != nil {
		t.Fatal(err)
	}
	if m, err = ps[1].Commit([]byte("last")); err == nil {
		err = ps[1].Send(m) // waits in the open coalescing morsel
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- ps[1].Close() }() // parks flushing it, for the budget
	for deadline := time.Now().Add(5 * time.Second); x.Stats().Waits == 0; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the producer's Close did not park for the budget")
		}
	}
	if err := ps[0].Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	drain(t, cs[0], func(m exchange.Morsel) { got = append(got, string(m.Bytes())) })
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != "last" {
		t.Fatalf("received %q, want the flushed %q second", got, "last")
	}
	closeT(t, x)
}

// TestBroadcastConsumerCloseRace closes broadcast consumers at random points
// while the producer pushes to their short queues: every morsel the others
// receive is intact, and no record is freed twice. (A producer that found a
// queue closed just after pushing to it once cleared that consumer's bit,
// and the consumer's Close, draining the slot, freed the record a second
// time: the checked build panics returning a segment twice, the normal
// build hands a freed segment on.)
func TestBroadcastConsumerCloseRace(t *testing.T) {
	noLeak(t)
	for round := range 1000 {
		p := newPool(t, 1<<20)
		x := newExchange(t, p, &exchange.Options{Topology: exchange.Broadcast, Consumers: 3, QueueLen: 2})
		ps, cs := ends(t, x, 1, 3)
		var wg sync.WaitGroup
		wg.Go(func() {
			defer ps[0].Close()
			for s := range 200 {
				m, err := ps[0].Reserve(100)
				if err != nil {
					t.Error(err)
					return
				}
				stamp(m.Bytes(), 0, s)
				if err := ps[0].Send(m); err != nil {
					return // every consumer has closed
				}
			}
		})
		for ci, co := range cs {
			wg.Go(func() {
				defer co.Close()
				for k := 0; ci == 0 || k < (round*7+ci*13)%50; k++ { // consumers 1 and 2 leave early
					m, err := co.Recv()
					if err == io.EOF {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					verify(t, m.Bytes())
					if err := co.Release(m); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		closeT(t, x)
		if t.Failed() {
			return
		}
	}
}

// TestIdleProducerCredit has one of two producers send a morsel and then
// stop sending, and the other send until the budget blocks it while nobody
// releases: it must block only once its next morsel would not fit. (The
// idle producer once kept the rest of the budget chunk it had leased, so
// the other blocked with room in the budget, and a consumer that waits for
// more bytes before it releases any would wait for good.)
func TestIdleProducerCredit(t *testing.T) {
	noLeak(t)
	const budget, size = 4 << 10, 128
	p := newPool(t, 1<<20)
	x := newExchange(t, p, &exchange.Options{Producers: 2, Budget: budget})
	ps, cs := ends(t, x, 2, 1)
	m, err := ps[0].Reserve(64) // leases a chunk of credit, spends 64 bytes of it
	if err == nil {
		err = ps[0].Send(m)
	}
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := ps[1].Reserve(size)
			if err == nil {
				err = ps[1].Send(m)
			}
			if err != nil {
				return // the exchange closed
			}
			sent.Add(1)
		}
	}()
	for last := int64(-1); last != sent.Load(); time.Sleep(100 * time.Millisecond) {
		last = sent.Load() // until the producer has blocked for 100 ms
	}
	if held := x.Stats().Held; held+size <= budget {
		t.Errorf("a producer blocked with %d bytes in flight: its %d-byte morsel fits the budget of %d", held, size, budget)
	}
	// The blocked Send still holds its morsel, which the checked build reports.
	if err := x.Close(); err != nil && !(check.On && errors.Is(err, exchange.ErrLeaked)) {
		t.Fatal(err)
	}
	<-done
	for _, e := range []interface{ Close() error }{ps[0], ps[1], cs[0]} {
		_ = e.Close()
	}
}

// TestReserveBatchFullPool asks ReserveBatch for more than the pool holds:
// it fails with the pool's ErrFull and leaves the pool as it found it.
// (It once discarded the morsels it had reserved into the producer's
// stash, which kept up to 64 of their segments out of the pool.)
func TestReserveBatchFullPool(t *testing.T) {
	for _, o := range []exchange.Options{{}, {Producers: 2}} { // with and without the 1:1 fast path
		p, err := pool.New(4<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		x := newExchange(t, p, &o)
		pr, err := x.Producer()
		if err != nil {
			t.Fatal(err)
		}
		before, pst := x.Stats(), p.Stats()
		if err := pr.ReserveBatch(make([]exchange.Morsel, 100), 60<<10); !errors.Is(err, pool.ErrFull) {
			t.Fatalf("a batch over the pool: %v, want pool.ErrFull", err)
		}
		if x.Stats() != before || p.Stats().Used != pst.Used {
			t.Fatalf("a failed batch left the pool holding %d bytes, %d before", p.Stats().Used, pst.Used)
		}
		closeT(t, x)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDiscardGivesLargeSegmentsBack reserves and discards 64 morsels far
// larger than the budget's share of a stash: their segments go back to the
// pool, where other users of a shared pool can have them, instead of
// staying in the producer's stash (16 MiB here, on a 1 MiB budget).
func TestDiscardGivesLargeSegmentsBack(t *testing.T) {
	p, err := pool.New(32<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	x := newExchange(t, p, &exchange.Options{Budget: 1 << 20})
	pr, err := x.Producer()
	if err != nil {
		t.Fatal(err)
	}
	used := p.Stats().Used
	ms := make([]exchange.Morsel, 64)
	for i := range ms {
		if ms[i], err = pr.Reserve(256 << 10); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		if err := pr.Discard(m); err != nil {
			t.Fatal(err)
		}
	}
	if held := p.Stats().Used - used; held > 1<<20 {
		t.Fatalf("after discarding every morsel the exchange holds %d KiB of the pool, more than its 1 MiB budget", held>>10)
	}
	closeT(t, x)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// closeT closes x, failing the test on an error.
func closeT(t *testing.T, x *exchange.Exchange) {
	t.Helper()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}
