// The machine's floor for a hand-off: the least one goroutine can spend
// handing an index (and a 64-byte morsel) to a goroutine on another core.

package handoff

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkFloor measures the ideal single-producer, single-consumer
// hand-off on this machine, with nothing of a real exchange: no budget, no
// handles to check, no parking, no stats. Two Lamport rings with cached
// cursors carry segment numbers: one to the consumer, one back to the
// producer (as an exchange recycles its segments). publish=1 makes each
// hand-off visible at once, which a single Send must; publish=64 makes 64
// at a time visible, which only a batch call may. payload=true has the
// producer fill each 64-byte segment and the consumer read it, as the
// exchange suite's handoff cases do.
//
// On a machine where moving a cache line between cores costs about as much
// as a hand-off target, this floor says what no implementation can beat:
// `go test -run '^$' -bench Floor -benchtime 1s ./internal/workload/handoff`.
func BenchmarkFloor(b *testing.B) {
	for _, publish := range []uint64{1, 64} {
		for _, payload := range []bool{false, true} {
			b.Run(fmt.Sprintf("publish=%d/payload=%t", publish, payload), func(b *testing.B) {
				floor(b, publish, payload)
			})
		}
	}
}

// floorRing is a bounded ring of segment numbers with one producer and one
// consumer, each caching the other's cursor (a Lamport ring). The producer
// makes its writes visible every publish writes and whenever it must wait.
type floorRing struct {
	_       [64]byte
	tail    atomic.Uint64 // published by the producer
	_       [56]byte
	head    atomic.Uint64 // published by the consumer
	_       [56]byte
	slots   []uint32
	mask    uint64
	publish uint64
}

// floorEnd is one side's view of a ring: its own cursor, the last it
// published, and its copy of the other side's.
type floorEnd struct {
	r                 *floorRing
	pos, shown, other uint64
}

func (e *floorEnd) show(c *atomic.Uint64) {
	if e.shown != e.pos {
		e.shown = e.pos
		c.Store(e.pos)
	}
}

// put appends v; flush publishes the caller's other ring before it waits,
// so the two goroutines never wait on each other's unpublished writes.
func (e *floorEnd) put(v uint32, flush func()) {
	r := e.r
	for e.pos-e.other > r.mask {
		if e.other = r.head.Load(); e.pos-e.other > r.mask {
			e.show(&r.tail)
			flush()
			runtime.Gosched()
		}
	}
	r.slots[e.pos&r.mask] = v
	if e.pos++; e.pos-e.shown >= r.publish {
		e.show(&r.tail)
	}
}

// take removes the next value, waiting for one.
func (e *floorEnd) take(flush func()) uint32 {
	r := e.r
	for e.pos == e.other {
		if e.other = r.tail.Load(); e.pos == e.other {
			e.show(&r.head)
			flush()
			runtime.Gosched()
		}
	}
	v := r.slots[e.pos&r.mask]
	if e.pos++; e.pos-e.shown >= r.publish {
		e.show(&r.head)
	}
	return v
}

func floor(b *testing.B, publish uint64, payload bool) {
	const n, size = 1024, 64
	mem := make([]byte, 2*n*size)
	fwd := &floorRing{slots: make([]uint32, n), mask: n - 1, publish: publish}
	back := &floorRing{slots: make([]uint32, 2*n), mask: 2*n - 1, publish: 64}
	// The producer's ends: fwd's tail and back's head; the consumer's: the others.
	send, recycled := &floorEnd{r: fwd}, &floorEnd{r: back}
	recv, recycle := &floorEnd{r: fwd}, &floorEnd{r: back}
	for i := range uint32(2 * n) {
		recycle.put(i, func() {})
	}
	recycle.show(&back.tail)
	prodFlush := func() { send.show(&fwd.tail); recycled.show(&back.head) }
	consFlush := func() { recv.show(&fwd.head); recycle.show(&back.tail) }
	var sum uint64
	var wg sync.WaitGroup
	b.SetBytes(size)
	b.ResetTimer()
	wg.Go(func() {
		for range b.N {
			s := recv.take(consFlush)
			if payload {
				sum += Sum(mem[s*size : (s+1)*size])
			}
			recycle.put(s, consFlush)
		}
		consFlush()
	})
	for i := range b.N {
		s := recycled.take(prodFlush)
		if payload {
			Fill(mem[s*size:(s+1)*size], i)
		}
		send.put(s, prodFlush)
	}
	prodFlush()
	wg.Wait()
	b.StopTimer()
	if sum == 1 {
		b.Log(sum) // keeps the consumer's reads
	}
}
