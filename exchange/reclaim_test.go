// Tests of an exchange on a pool it shares with a reclaimer (as a cache
// would be): a reserve that finds the pool full gets room from the
// reclaimer first, and fails with the pool's ErrFull when it has none.

package exchange_test

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/pool"
)

// fakeReclaimer stands in for a cache: it fills a pool with segments of its
// own and releases them when the pool asks, except those it is told to keep
// (as a cache keeps its pinned entries).
type fakeReclaimer struct {
	p     *pool.Pool
	mu    sync.Mutex
	refs  []pool.Ref // its segments, the ones it may give back last
	kept  int        // refs[:kept] are never given back
	bytes int        // bytes of its segments, rounded as the pool counts them
	size  int        // bytes of each segment
	calls atomic.Int64
	freed atomic.Int64
}

// fillPool commits size-byte segments until the pool has no room for
// another (without asking r: it is not registered yet) and registers r.
func fillPool(t *testing.T, p *pool.Pool, size int) *fakeReclaimer {
	t.Helper()
	r := &fakeReclaimer{p: p, size: size}
	for {
		ref, _, err := p.TryReserve(size)
		if errors.Is(err, pool.ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Unlatch(ref); err != nil { // published and unlatched, as a segment nobody pins
			t.Fatal(err)
		}
		r.refs = append(r.refs, ref)
		r.bytes += size
	}
	if st := p.Stats(); st.Used != st.Capacity || st.Used < r.bytes {
		t.Fatalf("filled pool: %+v; reclaimer holds %d bytes", st, r.bytes)
	}
	if err := p.AddReclaimer(r); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.RemoveReclaimer(r)
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, ref := range r.refs {
			if err := p.Release(ref); err != nil {
				t.Error(err)
			}
		}
		r.refs, r.bytes = nil, 0
	})
	return r
}

// keep makes the reclaimer keep its first n segments (n <= 0: none).
func (r *fakeReclaimer) keep(n int) {
	r.mu.Lock()
	r.kept = min(max(n, 0), len(r.refs))
	r.mu.Unlock()
}

func (r *fakeReclaimer) held() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

// Reclaim releases the segments not kept, last first, until need bytes
// are freed.
func (r *fakeReclaimer) Reclaim(need int) int {
	r.calls.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	freed := 0
	for freed < need && len(r.refs) > r.kept {
		ref := r.refs[len(r.refs)-1]
		if err := r.p.Release(ref); err != nil {
			panic(err) // no test goroutine to report to; the pool calls us on the reserving one
		}
		r.refs = r.refs[:len(r.refs)-1]
		r.bytes -= r.size
		freed += r.size
	}
	r.freed.Add(int64(freed))
	return freed
}

// TestReclaimerGivesWay runs an exchange on a pool a reclaimer has filled:
// every morsel goes through, because each reserve that finds no room gets
// it from the reclaimer (before the pool would grow); the budget holds; the
// reclaimer gives back no more than the exchange needs; and once the
// exchange closes the pool holds only the reclaimer's segments.
func TestReclaimerGivesWay(t *testing.T) {
	for _, c := range []struct {
		name     string
		o        exchange.Options
		growable bool
	}{
		{"1to1", exchange.Options{}, false},
		{"2to2", exchange.Options{Producers: 2, Consumers: 2}, false},
		{"coalesce", exchange.Options{Coalesce: 4 << 10}, false},
		{"growable", exchange.Options{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			noLeak(t)
			const (
				capacity  = 512 << 10
				budget    = 64 << 10
				maxMorsel = 6 << 10
				count     = 400
			)
			po := &pool.Options{Name: "shared"}
			if c.growable {
				po.MaxCapacity = 4 * capacity
			}
			p, err := pool.New(capacity, po)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close() })
			r := fillPool(t, p, 1<<10)
			o := c.o
			o.Budget = budget
			x := newExchange(t, p, &o)
			np, nc := max(o.Producers, 1), max(o.Consumers, 1)
			ps, cs := ends(t, x, np, nc)
			var wg sync.WaitGroup
			for pid, pr := range ps {
				wg.Go(func() {
					defer pr.Close()
					for s := range count {
						n := 16 + (s*977+pid*31)%(maxMorsel-16)
						m, err := pr.Reserve(n)
						if err != nil {
							t.Errorf("producer %d, morsel %d: %v", pid, s, err)
							return
						}
						stamp(m.Bytes(), pid, s)
						if err := pr.Send(m); err != nil {
							t.Errorf("producer %d, send %d: %v", pid, s, err)
							return
						}
					}
				})
			}
			var got, bytes atomic.Int64
			for _, co := range cs {
				wg.Go(func() {
					drain(t, co, func(m exchange.Morsel) {
						if o.Coalesce == 0 {
							verify(t, m.Bytes())
							got.Add(1)
						}
						bytes.Add(int64(m.Len()))
						if held := x.Stats().Held; held > budget+maxMorsel+o.Coalesce {
							t.Errorf("exchange holds %d bytes, budget %d", held, budget)
						}
						if st := p.Stats(); st.Capacity != capacity {
							t.Errorf("pool grew to %d bytes: the reclaimer was not asked first", st.Capacity)
						}
					})
				})
			}
			wg.Wait()
			want := int64(0)
			for s := range count {
				for pid := range np {
					want += int64(16 + (s*977+pid*31)%(maxMorsel-16))
				}
			}
			if bytes.Load() != want || o.Coalesce == 0 && got.Load() != int64(np*count) {
				t.Fatalf("received %d morsels, %d bytes; want %d morsels, %d bytes", got.Load(), bytes.Load(), np*count, want)
			}
			if r.calls.Load() == 0 || r.freed.Load() == 0 {
				t.Fatalf("reclaimer asked %d times, freed %d bytes", r.calls.Load(), r.freed.Load())
			}
			if held := r.held(); held == 0 {
				t.Fatalf("the reclaimer gave back all it had; the exchange needs at most about %d bytes", budget*2)
			}
			t.Logf("reclaimer asked %d times, freed %d of %d bytes", r.calls.Load(), r.freed.Load(), capacity)
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if st := p.Stats(); st.Used != r.held() || st.Grows != 0 {
				t.Fatalf("after close the pool holds %d bytes (grew %d times); the reclaimer holds %d", st.Used, st.Grows, r.held())
			}
		})
	}
}

// TestReclaimerHasNothing checks the contract when the pool is full and
// the reclaimer can free nothing (everything it holds is pinned): the
// producer's Reserve (and Commit) fails at once with the pool's ErrFull,
// nothing changes, and once the reclaimer can give room again the same
// producer goes on.
func TestReclaimerHasNothing(t *testing.T) {
	p, err := pool.New(64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	r := fillPool(t, p, 1<<10)
	r.keep(len(r.refs))
	x := newExchange(t, p, nil)
	ps, cs := ends(t, x, 1, 1)
	before, pst := x.Stats(), p.Stats()
	if _, err := ps[0].Reserve(100); !errors.Is(err, pool.ErrFull) {
		t.Fatalf("reserve on a full pool: %v", err)
	}
	if _, err := ps[0].Commit(make([]byte, 100)); !errors.Is(err, pool.ErrFull) {
		t.Fatalf("commit on a full pool: %v", err)
	}
	if r.calls.Load() == 0 {
		t.Fatal("the reclaimer was never asked")
	}
	if x.Stats() != before || p.Stats().Used != pst.Used || r.held() != pst.Used {
		t.Fatalf("a failed reserve changed something: %+v -> %+v", before, x.Stats())
	}
	r.keep(0)
	m, err := ps[0].Commit([]byte("after the reclaimer gave way"))
	if err != nil {
		t.Fatal(err)
	}
	if err := ps[0].Send(m); err != nil {
		t.Fatal(err)
	}
	if m, err = cs[0].Recv(); err != nil || string(m.Bytes()) != "after the reclaimer gave way" {
		t.Fatalf("recv: %q, %v", m.Bytes(), err)
	}
	_ = cs[0].Release(m)
	_ = ps[0].Close()
	_ = cs[0].Close()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Used != r.held() {
		t.Fatalf("after close the pool holds %d bytes; the reclaimer %d", st.Used, r.held())
	}
}

// TestCoalesceSendOnFullPool checks Send with coalescing when the pool is
// full and the reclaimer can free nothing: the short morsel, which has its
// segment already, is not lost for want of a coalescing one.
func TestCoalesceSendOnFullPool(t *testing.T) {
	p, err := pool.New(64<<10, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	x := newExchange(t, p, &exchange.Options{Coalesce: 1 << 10})
	ps, cs := ends(t, x, 1, 1)
	m, err := ps[0].Commit([]byte("a short morsel"))
	if err != nil {
		t.Fatal(err)
	}
	r := fillPool(t, p, 64)
	r.keep(len(r.refs))
	err = ps[0].Send(m)
	if err != nil {
		// Send's contract: for an error other than a stop or no reader,
		// nothing changed and m is still the producer's.
		if string(m.Bytes()) != "a short morsel" {
			t.Fatalf("send failed (%v) and the morsel reads %q", err, m.Bytes())
		}
		if derr := ps[0].Discard(m); derr != nil {
			t.Fatalf("send failed (%v), and the morsel is no longer the producer's: %v", err, derr)
		}
		t.Fatalf("send on a full pool: %v", err)
	}
	if err := ps[0].Close(); err != nil {
		t.Fatal(err)
	}
	got, err := cs[0].Recv()
	if err != nil || string(got.Bytes()) != "a short morsel" {
		t.Fatalf("recv: %q, %v", got.Bytes(), err)
	}
	_ = cs[0].Release(got)
	if _, err := cs[0].Recv(); err != io.EOF {
		t.Fatalf("recv at the end: %v", err)
	}
	_ = cs[0].Close()
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}
