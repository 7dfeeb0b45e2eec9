// Morsels: the handle a producer or consumer holds, and the record behind it.

package exchange

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/offheap/offheap/pool"
)

// Morsel is a handle to one morsel: a pool segment that one end of an
// exchange owns. Its Bytes are a view of the segment, pinned (latched in the
// pool) for as long as the handle is live; the zero Morsel is never valid.
//
// A Morsel is a small value, but it stands for ownership: once it is sent,
// released or discarded, that handle is dead, and the exchange rejects it
// with ErrSent, ErrReleased or ErrForeign instead of touching the morsel's
// new owner. Its view must not be used after that either.
type Morsel struct {
	p   unsafe.Pointer // the view's first byte
	n   uint32         // the view's length
	x   uint32         // the exchange's id
	ref uint64         // generation<<32 | record index
}

// Bytes returns the morsel's bytes: writable in place by the producer that
// reserved it, readable by the consumer that received it. The slice is valid
// until the handle dies (Send, Release, Discard, or cancellation).
func (m Morsel) Bytes() []byte { return unsafe.Slice((*byte)(m.p), m.n) }

// Len returns the morsel's length in bytes.
func (m Morsel) Len() int { return int(m.n) }

// String formats the handle as record.generation, the form errors use.
func (m Morsel) String() string { return fmt.Sprintf("%d.%d", m.index(), m.gen()) }

func (m Morsel) index() uint32 { return uint32(m.ref) }
func (m Morsel) gen() uint32   { return uint32(m.ref >> 32) }

// Generations. Each record has two: the producer side's, in its prodInfo,
// and the consumer side's, in its consInfo. A handle carries one of them: a
// producer's handle an even one, a consumer's an odd one, so a handle given
// to the wrong kind of end is recognised by its parity alone.
//
// The producer generation is even (and never handed out yet) while the
// record is free; Reserve hands it out; Send adds one (the producer's handle
// dies, and a later use of it finds the record one ahead: ErrSent); Discard
// adds two. Reserve of a record that was sent adds one first. The consumer
// generation is even while no consumer holds the record; receiving adds one
// (for a broadcast the producer does, for all consumers) and the last
// release adds one. So a handle is live exactly when its generation equals
// its side's, and each side's generation is written only by that side.
//
// A consumer word packs the consumer generation (high 32 bits) and, for a
// broadcast morsel in flight, the set of consumers yet to release it (low
// 32 bits).
const (
	genShift = 32
	maskBits = 1<<genShift - 1
)

func genOf(w uint64) uint32 { return uint32(w >> genShift) }

// A record describes one morsel, in three parts kept in parallel tables so
// that each is written by one side only: segInfo, written when the record
// gets or loses a segment (rarely: a released record keeps its segment, so
// the next Reserve of a similar size reuses both without touching the pool),
// prodInfo, written by the producer that holds it, and consInfo, written by
// the consumers that receive it. In a 1:1 steady state no record's cache
// line crosses between the two CPUs: what the consumer needs of the
// producer's side (the record and the morsel's length) travels in the queue
// slot (see slotOf).
//
// The producer and consumer parts are padded to a cache line each: with
// several producers or consumers, neighbouring records belong to different
// goroutines, which would otherwise write the same line.
//
// Invariants: a record with a segment holds that segment latched once (since
// pool.Reserve) until the segment goes back to the pool; prodInfo.n <=
// segInfo.size; size is a size class (see classOf), 0 exactly when ref is 0.
type segInfo struct {
	ref   pool.Ref // the segment, or 0
	off   uint64   // the segment's offset from the pool's base
	size  uint32   // the segment's length, a size class: what the budget counts
	state uint32   // checked build: see state*
}

// setState and getState keep the checked build's record state: atomic,
// because Close's leak report reads it while ends may still hand morsels in.
func (s *segInfo) setState(st uint32) { atomic.StoreUint32(&s.state, st) }
func (s *segInfo) getState() uint32   { return atomic.LoadUint32(&s.state) }

type prodInfo struct {
	gen uint32 // producer generation; atomic for readers of stale handles
	n   uint32 // the morsel's length
	_   [56]byte
}

type consInfo struct {
	word   uint64 // consumer generation and broadcast owners; see genShift
	owner  uint32 // the consumer that received it (not Broadcast)
	claims uint32 // Broadcast: consumers whose ReleaseBatch has claimed it
	got    uint32 // Broadcast: consumers that have received it (every one's handle is the same)
	_      [44]byte
}

// A queue slot carries a record index and the morsel's length.
func slotOf(i, n uint32) uint64     { return uint64(n)<<32 | uint64(i) }
func unslot(v uint64) (i, n uint32) { return uint32(v), uint32(v >> 32) }

// The record states the checked build tracks, to verify every transition.
const (
	stateFree     = iota // in a free ring, a producer's stash, or spare
	stateHeld            // reserved by a producer
	stateQueued          // sent, in a queue (a broadcast stays here until freed)
	stateReceived        // taken by a consumer
)

// records is the table of records: chunks allocated as the exchange first
// needs them and never freed before the exchange, so an index stays valid
// and a record never moves. Chunks hold no Go pointers, so the garbage
// collector never scans them.
//
// Invariant: every index below n has its chunk published in dir.
type records struct {
	dir   []atomic.Pointer[chunk]
	n     atomic.Uint32 // records made
	mu    sync.Mutex    // makes records; guards spare
	spare []uint32      // records without a segment, free
}

const (
	chunkBits = 10
	chunkLen  = 1 << chunkBits
)

type chunk struct {
	seg  [chunkLen]segInfo
	prod [chunkLen]prodInfo
	cons [chunkLen]consInfo
}

func (t *records) init(maxRecords int) {
	t.dir = make([]atomic.Pointer[chunk], (maxRecords+chunkLen-1)/chunkLen)
}

// chunkOf returns the chunk of record i, which must be below t.n; record i
// is at i&(chunkLen-1) in it.
func (t *records) chunkOf(i uint32) *chunk { return t.dir[i>>chunkBits].Load() }

// seg, prod and cons return the parts of record i, which must be below t.n.
func (t *records) seg(i uint32) *segInfo   { return &t.dir[i>>chunkBits].Load().seg[i&(chunkLen-1)] }
func (t *records) prod(i uint32) *prodInfo { return &t.dir[i>>chunkBits].Load().prod[i&(chunkLen-1)] }
func (t *records) cons(i uint32) *consInfo { return &t.dir[i>>chunkBits].Load().cons[i&(chunkLen-1)] }

// take returns a free record without a segment: a spare one or a new one;
// false when the table is full.
func (t *records) take() (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if k := len(t.spare); k > 0 {
		i := t.spare[k-1]
		t.spare = t.spare[:k-1]
		return i, true
	}
	i := t.n.Load()
	c := int(i >> chunkBits)
	if c >= len(t.dir) {
		return 0, false
	}
	if t.dir[c].Load() == nil {
		t.dir[c].Store(new(chunk))
	}
	t.n.Store(i + 1)
	return i, true
}

// putSpare keeps free record i, whose segment has gone back to the pool.
func (t *records) putSpare(i uint32) {
	t.mu.Lock()
	t.spare = append(t.spare, i)
	t.mu.Unlock()
}

// Size classes: a morsel's segment is at least minSegment bytes (a cache
// line, so morsels written by different goroutines never share one) and is
// rounded up to a multiple of minSegment below 4 KiB and to a quarter of a
// power of two above, so a reused segment wastes at most a quarter.
const (
	minSegment = 64
	maxMorsel  = 1 << 31 // the largest morsel; its class still fits a uint32
)

// classOf returns the segment size for a morsel of n bytes, 0 <= n <= maxMorsel.
func classOf(n int) uint32 {
	if n <= minSegment {
		return minSegment
	}
	if n <= 4096 {
		return uint32((n + minSegment - 1) &^ (minSegment - 1))
	}
	q := 1 << (bitLen(uint64(n-1)) - 2) // a quarter of the next power of two
	return uint32((n + q - 1) &^ (q - 1))
}

// fits reports whether a segment of size bytes should carry a morsel of
// class c: big enough, and at most twice as big.
func fits(size, c uint32) bool { return size >= c && size/2 <= c }

func bitLen(v uint64) int {
	n := 0
	for ; v != 0; v >>= 1 {
		n++
	}
	return n
}

// clearBits clears bits (consumers' bits) in the word of broadcast record r
// if its generation is gen and they are all set; false if not.
func clearBits(r *consInfo, gen uint32, bits uint64) bool {
	for {
		w := atomic.LoadUint64(&r.word)
		if genOf(w) != gen || w&bits != bits {
			return false
		}
		if atomic.CompareAndSwapUint64(&r.word, w, w&^bits) {
			return true
		}
	}
}

// finish moves broadcast record r from generation gen to the next once no
// consumer bit is left; true for the one caller that does, who frees it.
func finish(r *consInfo, gen uint32) bool {
	return atomic.CompareAndSwapUint64(&r.word, uint64(gen)<<genShift, uint64(gen+1)<<genShift)
}
