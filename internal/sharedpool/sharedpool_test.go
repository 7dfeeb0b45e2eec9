// A cache filled to its pool's capacity and an exchange run through the
// same pool: the cache gives way, its pins hold, and the pool ends with the
// cache's bytes.

package sharedpool_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/cache"
	"github.com/offheap/offheap/exchange"
	"github.com/offheap/offheap/pool"
)

const (
	capacity  = 512 << 10 // the pool's, and the cache's budget
	entryLen  = 1 << 10   // an entry's bytes: key and value
	keyLen    = 8
	entries   = capacity / entryLen
	budget    = 64 << 10 // the exchange's
	maxMorsel = 6 << 10
	perEnd    = 200 // morsels each producer sends
)

func key(i int) []byte { return fmt.Appendf(nil, "k%07d", i) }

func value(i int) []byte {
	v := make([]byte, entryLen-keyLen)
	for j := range v {
		v[j] = byte(i*7 + j)
	}
	return v
}

func stamp(b []byte, pid, s int) {
	binary.LittleEndian.PutUint32(b, uint32(pid))
	binary.LittleEndian.PutUint32(b[4:], uint32(s))
	for j := 8; j < len(b); j++ {
		b[j] = byte(pid*3 + s + j)
	}
}

func morselLen(pid, s int) int { return 8 + (s*977+pid*131)%(maxMorsel-8) }

// check verifies a morsel stamp wrote and returns its producer.
func check(b []byte) (int, error) {
	pid, s := int(binary.LittleEndian.Uint32(b)), int(binary.LittleEndian.Uint32(b[4:]))
	if len(b) != morselLen(pid, s) {
		return 0, fmt.Errorf("morsel %d of producer %d: %d bytes", s, pid, len(b))
	}
	for j := 8; j < len(b); j++ {
		if b[j] != byte(pid*3+s+j) {
			return 0, fmt.Errorf("morsel %d of producer %d: byte %d is %d", s, pid, j, b[j])
		}
	}
	return pid, nil
}

type pin struct {
	i    int
	view []byte
	h    cache.Handle
}

// TestCacheGivesWay fills a cache to its pool's capacity, pins a few of its
// entries (the likeliest victims among them), and runs an exchange through
// the same pool while a reader checks the cache's values. Every morsel
// arrives intact; the pool never grows (the cache was asked first); the
// cache evicted unpinned entries and no pinned one, whose bytes never
// changed; and once the exchange closes the pool holds the cache's bytes.
func TestCacheGivesWay(t *testing.T) {
	for _, o := range []exchange.Options{
		{},
		{Producers: 2, Consumers: 2},
		{Topology: exchange.Partitioned, Producers: 2, Consumers: 2},
		{Producers: 2, Coalesce: 4 << 10},
	} {
		t.Run(fmt.Sprintf("%v_%dto%d_coalesce%d", o.Topology, max(o.Producers, 1), max(o.Consumers, 1), o.Coalesce), func(t *testing.T) {
			run(t, o)
		})
	}
}

func run(t *testing.T, o exchange.Options) {
	p, err := pool.New(capacity, &pool.Options{MaxCapacity: 4 * capacity, Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := cache.New(capacity, &cache.Options{Pool: p, Name: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range entries {
		if err := c.Set(key(i), value(i)); err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
	}
	if st, cst := p.Stats(), c.Stats(); st.Used != capacity || cst.BytesUsed != capacity || cst.Entries != entries || cst.Evictions != 0 {
		t.Fatalf("filled: pool %d of %d bytes; cache %+v", st.Used, st.Capacity, cst)
	}
	var pins []pin
	for _, i := range []int{0, 1, 2, 3, entries / 3, entries / 2, entries - 2, entries - 1} {
		v, h, err := c.Pin(key(i))
		if err != nil {
			t.Fatalf("pin %d: %v", i, err)
		}
		pins = append(pins, pin{i, v, h})
	}
	checkPins := func(when string) {
		t.Helper()
		for _, pn := range pins {
			if !bytes.Equal(pn.view, value(pn.i)) {
				t.Errorf("%s: pinned entry %d changed", when, pn.i)
			}
		}
	}

	o.Budget = budget
	x, err := exchange.New(t.Context(), p, &o)
	if err != nil {
		t.Fatal(err)
	}
	np, nc := max(o.Producers, 1), max(o.Consumers, 1)
	var ends, reader sync.WaitGroup
	var sent atomic.Int64
	for pid := range np {
		pr, err := x.Producer()
		if err != nil {
			t.Fatal(err)
		}
		ends.Go(func() {
			defer pr.Close()
			for s := range perEnd {
				m, err := pr.Reserve(morselLen(pid, s))
				if err != nil {
					t.Errorf("producer %d, reserve %d: %v", pid, s, err)
					return
				}
				stamp(m.Bytes(), pid, s)
				if o.Topology == exchange.Partitioned {
					err = pr.SendTo(s%nc, m)
				} else {
					err = pr.Send(m)
				}
				if err != nil {
					t.Errorf("producer %d, send %d: %v", pid, s, err)
					return
				}
				sent.Add(int64(morselLen(pid, s)))
			}
		})
	}
	var got, peak atomic.Int64
	for range nc {
		co, err := x.Consumer()
		if err != nil {
			t.Fatal(err)
		}
		ends.Go(func() {
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
				if o.Coalesce == 0 {
					if _, err := check(m.Bytes()); err != nil {
						t.Error(err)
					}
				}
				got.Add(int64(len(m.Bytes())))
				if held := x.Stats().Held; held > budget+max(maxMorsel, o.Coalesce) {
					t.Errorf("exchange holds %d bytes, budget %d", held, budget)
				}
				if u := p.Stats().Used - c.Stats().BytesUsed; u > int(peak.Load()) { // two snapshots: roughly
					peak.Store(int64(u))
				}
				if st := p.Stats(); st.Capacity != capacity {
					t.Errorf("pool grew to %d bytes: the cache was not asked first", st.Capacity)
				}
				if err := co.Release(m); err != nil {
					t.Error(err)
				}
			}
		})
	}
	done := make(chan struct{})
	var reads atomic.Int64
	reader.Go(func() { // a reader: a hit is always the value that was set
		var dst []byte
		for r := 0; ; r++ {
			select {
			case <-done:
				return
			default:
			}
			i := (r * 37) % entries
			var ok bool
			if dst, ok = c.Get(dst[:0], key(i)); ok && !bytes.Equal(dst, value(i)) {
				t.Errorf("get %d during the exchange: wrong value", i)
				return
			}
			reads.Add(1)
			runtime.Gosched()
		}
	})
	endsDone := make(chan struct{})
	go func() { ends.Wait(); close(endsDone) }()
	for running := true; running; {
		select {
		case <-endsDone:
			running = false
		default:
			checkPins("during the exchange")
			time.Sleep(100 * time.Microsecond)
		}
	}
	close(done)
	reader.Wait()
	if t.Failed() {
		return
	}
	want := int64(0)
	for pid := range np {
		for s := range perEnd {
			want += int64(morselLen(pid, s))
		}
	}
	if got.Load() != want || sent.Load() != want {
		t.Fatalf("sent %d bytes, received %d; want %d", sent.Load(), got.Load(), want)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	checkPins("after the exchange")
	cst, pst := c.Stats(), p.Stats()
	t.Logf("cache: %d evictions, %d entries left; pool: %d of %d bytes, %d grows, free in %d extents; exchange's peak in the pool about %d; %d reads during", cst.Evictions, cst.Entries, pst.Used, pst.Capacity, pst.Grows, pst.FreeSegments, peak.Load(), reads.Load())
	if cst.Evictions == 0 || cst.Entries >= entries {
		t.Fatalf("the cache evicted %d entries, holds %d of %d", cst.Evictions, cst.Entries, entries)
	}
	if cst.Evictions+cst.Entries != entries {
		t.Fatalf("%d evictions + %d entries != %d set", cst.Evictions, cst.Entries, entries)
	}
	for _, pn := range pins {
		if v, ok := c.Get(nil, key(pn.i)); !ok || !bytes.Equal(v, value(pn.i)) {
			t.Fatalf("pinned entry %d: get %v, value right %v", pn.i, ok, bytes.Equal(v, value(pn.i)))
		}
	}
	if pst.Used != cst.BytesUsed || pst.Capacity != capacity || pst.Grows != 0 {
		t.Fatalf("after the exchange the pool holds %d of %d bytes (%d grows); the cache %d", pst.Used, pst.Capacity, pst.Grows, cst.BytesUsed)
	}
	// The cache fills up again from the room the exchange gave back.
	if err := c.Set(key(entries), value(entries)); err != nil {
		t.Fatal(err)
	}
	for _, pn := range pins {
		if err := pn.h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Used != 0 {
		t.Fatalf("after the cache closed the pool holds %d bytes", st.Used)
	}
}
