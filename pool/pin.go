// Per-P operation counters, so lock-free Read and Latch count themselves
// without an atomic add on a shared cache line.

package pool

import (
	"sync/atomic"
	_ "unsafe" // for go:linkname
)

// procPin disables preemption and returns the current P's id; procUnpin
// undoes it. The runtime keeps both linkable for this use (go.dev/issue/67401);
// sync.Pool counts per P the same way.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// pcounter is one P's counters, alone on a cache line. It lives in the meta
// region (off the Go heap): while pinned, only goroutines on that P touch it,
// one at a time; Stats reads it racily, which for aligned words on 64-bit
// platforms only risks a slightly stale sum.
type pcounter struct {
	reads, latches uint64
	_              [48]byte
}

const (
	maxProcs     = 256
	countersSize = maxProcs * 64 // unsafe.Sizeof(pcounter{}) * maxProcs, checked in a test
)

func (p *Pool) countRead() {
	if id := procPin(); id < maxProcs {
		p.counters[id].reads++
	} else {
		p.overflow.reads.Add(1)
	}
	procUnpin()
}

func (p *Pool) countLatch() {
	if id := procPin(); id < maxProcs {
		p.counters[id].latches++
	} else {
		p.overflow.latches.Add(1)
	}
	procUnpin()
}

// sumCounters adds up every P's counters.
func (p *Pool) sumCounters() (reads, latches uint64) {
	for i := range p.counters {
		c := &p.counters[i]
		reads += atomic.LoadUint64(&c.reads)
		latches += atomic.LoadUint64(&c.latches)
	}
	return reads + p.overflow.reads.Load(), latches + p.overflow.latches.Load()
}

// overflowCounts count for Ps numbered maxProcs and above (GOMAXPROCS > 256).
type overflowCounts struct{ reads, latches atomic.Uint64 }
