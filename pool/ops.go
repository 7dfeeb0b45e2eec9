// The pool's operations: Commit and Reserve, Read, Latch and Unlatch,
// Release, Info and Compact.

package pool

import (
	"fmt"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

const (
	// optimisticReadMax is the longest segment Read's inlined path copies
	// before checking that the length it read is current; longer ones are
	// checked first, so a racing reuse of the slot never makes Read copy
	// (and allocate) the length of another segment.
	optimisticReadMax = 4 << 10
	// optimisticTries is how often Read retries a copy a writer interfered with.
	optimisticTries = 4
)

// Commit copies data into a new segment and returns its Ref. A zero-length
// commit is valid and uses no space. If no hole fits and top has no room,
// Commit compacts (when the free bytes would suffice), then grows in place
// up to MaxCapacity, then fails with ErrFull; more than the pool could ever
// hold is ErrTooLarge. The bytes are copied under the pool's lock, so other
// writers wait while a long segment is copied (readers do not).
func (p *Pool) Commit(data []byte) (Ref, error) {
	n := uint64(len(data))
	if n == 0 {
		ref, _, err := p.reserve("commit", 0, 0, true)
		return ref, err
	}
	size := p.size(n)
	h, ok := p.tryLock()
	if !ok {
		if h, ok = p.lockSlow(); !ok {
			return 0, p.sizeError("commit", int(n), ErrClosed)
		}
	}
	// The steady state, inlined: no holes, room at top, a slot at hand.
	var i uint32
	ok = false
	if p.free.flMap == 0 && p.capacity-p.top >= size {
		if i, ok = p.popSlot(); ok {
			p.linkLast(i, size)
		}
	}
	if !ok {
		if i, ok = p.place(size); !ok {
			var err error
			if i, err = p.placeSlow(size, &h); err != nil {
				return 0, p.sizeError("commit", int(n), p.failed(h, err))
			}
		}
	}
	s := p.slot(i)
	gen := genOf(s.word)
	s.word = uint64(gen) | usedBits
	s.n = n
	copy(p.view(s.off, n), data)
	p.commits++
	if check.On {
		p.checkAfterMutation()
	}
	p.unlock(h)
	return makeRef(i, gen), nil
}

// Reserve places a segment of n bytes and returns its Ref and a view of it to
// write in place. The segment starts latched once and unpublished: Read and
// Latch report ErrBusy until the Unlatch that drops that latch publishes it.
func (p *Pool) Reserve(n int) (Ref, []byte, error) {
	if n < 0 {
		return 0, nil, p.sizeError("reserve", n, ErrInvalid)
	}
	return p.reserve("reserve", n, flagUnpub|latchOne, true)
}

// reserve places a segment of n bytes whose word gets flags, counting it as a
// commit, and returns a view of it. Without slow it only places (see TryReserve).
func (p *Pool) reserve(op string, n int, flags uint64, slow bool) (Ref, []byte, error) {
	h, ok := p.lock()
	if !ok {
		return 0, nil, p.sizeError(op, n, ErrClosed)
	}
	var (
		i    uint32
		err  error
		size = p.size(uint64(n))
	)
	switch {
	case uint64(n) > uint64(p.maxCap):
		err = ErrTooLarge
	case n == 0:
		if i, ok = p.newSlot(); ok {
			p.slot(i).off, p.slot(i).prev, p.slot(i).next = 0, none, none
		} else {
			err = fmt.Errorf("no slot left for a zero-length segment: %w", ErrFull)
		}
	default:
		if i, ok = p.place(size); !ok {
			if err = ErrFull; slow {
				i, err = p.placeSlow(size, &h)
			}
		}
	}
	if err == ErrFull && !slow {
		return 0, nil, p.failed(h, p.tryFull) // see TryReserve
	}
	if err != nil {
		return 0, nil, p.sizeError(op, n, p.failed(h, err))
	}
	s := p.slot(i)
	gen := genOf(s.word)
	s.word = uint64(gen) | usedBits | flags
	s.n = uint64(n)
	p.commits++
	b := p.view(s.off, uint64(n))
	if check.On {
		p.checkAfterMutation()
	}
	p.unlock(h)
	return makeRef(i, gen), b, nil
}

// placeSlow finds room for size bytes after place failed: it asks the
// reclaimers (see reclaim.go), compacts if the free bytes would suffice, then
// grows. The lock, taken as *h, is dropped while reclaimers run; if the pool
// closed meanwhile, placeSlow returns ErrClosed with *h zero: not held.
func (p *Pool) placeSlow(size uint64, h *uint64) (uint32, error) {
	if size > uint64(p.maxCap) {
		return 0, ErrTooLarge
	}
	if i, ok, err := p.reclaimAndPlace(size, h); ok || err != nil {
		return i, err
	}
	if p.holes > 0 && p.capacity-p.usedBytes() >= size { // without holes, compaction moves nothing
		p.compact()
		if i, ok := p.place(size); ok {
			return i, nil
		}
	}
	if p.top+size <= uint64(p.maxCap) && p.grow(p.top+size) {
		if i, ok := p.place(size); ok {
			return i, nil
		}
	}
	return 0, ErrFull
}

// Read appends a copy of the segment's bytes to dst and returns the result.
// It takes no lock and writes no shared memory: it copies, then checks that
// the segment's state word and the compaction counter did not change (see
// readBegin), so reads of different segments scale across CPUs.
func (p *Pool) Read(ref Ref, dst []byte) ([]byte, error) {
	if !check.On {
		i := ref.index()
		if uint64(i) < atomic.LoadUint64(&p.slotsReady) {
			s := p.slot(i)
			m := atomic.LoadUint64(&p.moves)
			if w := s.loadWord(); m&(movesActive|movesClosed) == 0 && w&readMask == uint64(ref.gen())|usedBits {
				off, n := atomic.LoadUint64(&s.off), atomic.LoadUint64(&s.n)
				if ready := atomic.LoadUint64(&p.dataReady); n <= optimisticReadMax && off <= ready && n <= ready-off {
					k := len(dst)
					dst = append(dst, p.view(off, n)...)
					if p.readValid(s, w, m) {
						if id := proc.Pin(); id < maxProcs { // countRead, inlined
							p.counters[id].reads++
						} else {
							p.overflow.reads.Add(1)
						}
						proc.Unpin()
						return dst, nil
					}
					dst = dst[:k]
				}
			}
		}
	}
	return p.readSlow(ref, dst)
}

// readSlow is Read's careful path: it waits out compactions and retries a
// few times without a lock, checking a long segment's offset and length
// before copying it; after repeated interference it copies under the lock.
// It never latches, so it cannot be disturbed by a stray Unlatch nor make
// Close busy.
func (p *Pool) readSlow(ref Ref, dst []byte) ([]byte, error) {
	if check.On {
		return p.readLocked(ref, dst)
	}
	i := ref.index()
	if uint64(i) >= atomic.LoadUint64(&p.slotsReady) {
		return dst, p.refError("read", ref, 0)
	}
	s := p.slot(i)
	for try := 0; try < optimisticTries; try++ {
		m, ok := p.readBegin()
		if !ok {
			return dst, p.errorf("read", ref, ErrClosed)
		}
		w := s.loadWord()
		if w&readMask != uint64(ref.gen())|usedBits {
			return dst, p.refError("read", ref, w) // the word alone is the truth
		}
		off, n := atomic.LoadUint64(&s.off), atomic.LoadUint64(&s.n)
		if n > optimisticReadMax && !p.readValid(s, w, m) {
			continue // off and n may belong to another segment
		}
		if ready := atomic.LoadUint64(&p.dataReady); off > ready || n > ready-off {
			continue
		}
		k := len(dst)
		dst = append(dst, p.view(off, n)...)
		if p.readValid(s, w, m) {
			p.countRead()
			return dst, nil
		}
		dst = dst[:k]
	}
	return p.readLocked(ref, dst)
}

// readLocked is Read under the lock: in the checked build, so the invariant
// checks never race with a reader, and after repeated interference.
func (p *Pool) readLocked(ref Ref, dst []byte) ([]byte, error) {
	h, ok := p.lock()
	if !ok {
		return dst, p.errorf("read", ref, ErrClosed)
	}
	defer p.unlock(h)
	s, w, err := p.lookup(ref, readMask)
	if err != nil {
		return dst, p.refError("read", ref, w)
	}
	p.countRead()
	return append(dst, p.view(s.off, s.n)...), nil
}

// lookup finds ref's slot under the lock; err is set unless its word, under
// mask, names ref's generation as a segment.
func (p *Pool) lookup(ref Ref, mask uint64) (*slot, uint64, error) {
	if ref.index() >= p.nslots {
		return nil, 0, ErrUnknownRef
	}
	s := p.slot(ref.index())
	w := s.loadWord()
	if w&mask != uint64(ref.gen())|usedBits {
		return s, w, ErrUnknownRef
	}
	return s, w, nil
}

// refError explains why word w does not name a readable segment for ref:
// the pool is closed (Close drops the slot table, whose words then read as
// zero to a lock-free caller that found the pool open just before), the
// segment is not yet published (ErrBusy), or the ref is unknown.
func (p *Pool) refError(op string, ref Ref, w uint64) error {
	switch {
	case atomic.LoadUint64(&p.seq)&seqClosed != 0:
		return p.errorf(op, ref, ErrClosed)
	case w&refMask == uint64(ref.gen())|usedBits && w&flagUnpub != 0:
		return p.errorf(op, ref, fmt.Errorf("reserved and not yet published: %w", ErrBusy))
	}
	return p.errorf(op, ref, ErrUnknownRef)
}

// Latch returns a zero-copy view of the segment, pinned until a matching
// Unlatch: compaction does not move it and Release does not free it. Latches
// count; each needs its own Unlatch. Latch takes no lock.
func (p *Pool) Latch(ref Ref) ([]byte, error) {
	b, err := p.latch(ref, "latch")
	if err == nil {
		p.countLatch()
	}
	return b, err
}

func (p *Pool) latch(ref Ref, op string) ([]byte, error) {
	if check.On {
		return p.latchLocked(ref, op)
	}
	i := ref.index()
	if uint64(i) >= atomic.LoadUint64(&p.slotsReady) {
		return nil, p.refError(op, ref, 0)
	}
	s := p.slot(i)
	want := uint64(ref.gen()) | usedBits
	for {
		sq, ok := p.lockedBegin()
		if !ok {
			return nil, p.errorf(op, ref, ErrClosed)
		}
		w := s.loadWord()
		if w&readMask != want {
			return nil, p.refError(op, ref, w) // the word alone is the truth
		}
		if latchesOf(w) == maxLatches {
			return nil, p.errorf(op, ref, fmt.Errorf("%d latches: %w", maxLatches, ErrBusy))
		}
		if !s.casWord(w, w+latchOne) {
			continue
		}
		// The CAS is a full barrier: a writer that locked before it shows in
		// seq now; one that locks after it sees the latch and leaves the
		// segment in place.
		off, n := atomic.LoadUint64(&s.off), atomic.LoadUint64(&s.n)
		if atomic.LoadUint64(&p.seq) == sq {
			return p.view(off, n), nil
		}
		return p.latchSettle(ref, op)
	}
}

// latchSettle finishes a Latch whose CAS raced with a writer: under the lock
// the segment can no longer move, so either the latch stands and the offset
// read now is final, or the writer released the segment and the latch is
// undone (or was already wiped with the old generation).
func (p *Pool) latchSettle(ref Ref, op string) ([]byte, error) {
	h, ok := p.lock()
	if !ok {
		return nil, p.errorf(op, ref, ErrClosed)
	}
	defer p.unlock(h)
	s, w, err := p.lookup(ref, unlatchMask)
	if err != nil {
		return nil, p.errorf(op, ref, ErrUnknownRef) // the release wiped the latch with the generation
	}
	if w&flagRelease != 0 {
		p.dropLatch(ref.index(), s)
		return nil, p.errorf(op, ref, ErrUnknownRef)
	}
	return p.view(s.off, s.n), nil
}

// latchLocked is Latch in the checked build.
func (p *Pool) latchLocked(ref Ref, op string) ([]byte, error) {
	h, ok := p.lock()
	if !ok {
		return nil, p.errorf(op, ref, ErrClosed)
	}
	defer p.unlock(h)
	s, w, err := p.lookup(ref, readMask)
	if err != nil {
		return nil, p.refError(op, ref, w)
	}
	if latchesOf(w) == maxLatches {
		return nil, p.errorf(op, ref, fmt.Errorf("%d latches: %w", maxLatches, ErrBusy))
	}
	s.word = w + latchOne
	return p.view(s.off, s.n), nil
}

// Unlatch drops one latch. The Unlatch that drops a Reserve's latch
// publishes the segment; the one that drops the last latch of a released
// segment frees it. Without a latch it returns ErrNotLatched.
func (p *Pool) Unlatch(ref Ref) error { return p.unlatch(ref, "unlatch") }

func (p *Pool) unlatch(ref Ref, op string) error {
	if check.On {
		return p.unlatchLocked(ref, op)
	}
	i := ref.index()
	if uint64(i) >= atomic.LoadUint64(&p.slotsReady) {
		return p.refError(op, ref, 0)
	}
	s := p.slot(i)
	want := uint64(ref.gen()) | usedBits
	for {
		if atomic.LoadUint64(&p.seq)&seqClosed != 0 {
			return p.errorf(op, ref, ErrClosed)
		}
		w := s.loadWord()
		switch {
		case w&unlatchMask != want:
			return p.refError(op, ref, w)
		case latchesOf(w) == 0:
			return p.errorf(op, ref, ErrNotLatched)
		case latchesOf(w) == 1 && w&flagRelease != 0:
			return p.unlatchLocked(ref, op) // the last latch of a released segment: free it
		}
		nw := w - latchOne
		if latchesOf(nw) == 0 {
			nw &^= flagUnpub
		}
		if s.casWord(w, nw) {
			return nil
		}
	}
}

// unlatchLocked is Unlatch under the lock: in the checked build, and for the
// last latch of a released segment.
func (p *Pool) unlatchLocked(ref Ref, op string) error {
	h, ok := p.lock()
	if !ok {
		return p.errorf(op, ref, ErrClosed)
	}
	defer p.unlock(h)
	s, w, err := p.lookup(ref, unlatchMask)
	if err != nil {
		return p.errorf(op, ref, err)
	}
	if latchesOf(w) == 0 {
		return p.errorf(op, ref, ErrNotLatched)
	}
	p.dropLatch(ref.index(), s)
	return nil
}

// dropLatch takes one latch off segment i, publishing it or freeing it
// (released) if that was the last. Callers hold the lock; lock-free Unlatch
// may still CAS the word, so this CASes too.
func (p *Pool) dropLatch(i uint32, s *slot) {
	for {
		w := s.loadWord()
		nw := w - latchOne
		if latchesOf(nw) == 0 {
			nw &^= flagUnpub
		}
		if !s.casWord(w, nw) {
			continue
		}
		if latchesOf(nw) == 0 && nw&flagRelease != 0 {
			p.pending--
			p.reclaim(i)
		}
		if check.On {
			p.checkAfterMutation()
		}
		return
	}
}

// Release frees the segment. If it is latched, the ref is dead at once (for
// Read, Latch, Info and Release) and its space is freed at its last Unlatch.
// Releasing an unknown, stale or already released ref is ErrUnknownRef.
func (p *Pool) Release(ref Ref) error {
	h, ok := p.tryLock()
	if !ok {
		if h, ok = p.lockSlow(); !ok {
			return p.errorf("release", ref, ErrClosed)
		}
	}
	s, w, err := p.lookup(ref, refMask)
	if err != nil {
		p.unlock(h)
		return p.errorf("release", ref, err)
	}
	switch i := ref.index(); {
	case latchesOf(w) != 0 || s.n == 0:
		p.releaseOther(i, s)
	case !check.On && s.next == none && !p.isHole(s.prev):
		// The last extent after a segment (or nothing), inlined: top retreats.
		p.dropLast(i, s)
	default:
		p.freeExtent(i, p.size(s.n))
	}
	p.releases++
	if check.On {
		p.checkAfterMutation()
	}
	p.unlock(h)
	return nil
}

// releaseOther releases a latched or zero-length segment: a latched one is
// marked, and freed by its last Unlatch (which may be racing with us).
func (p *Pool) releaseOther(i uint32, s *slot) {
	for {
		w := s.loadWord()
		if latchesOf(w) == 0 {
			p.reclaim(i)
			return
		}
		if s.casWord(w, w|flagRelease) {
			p.pending++
			return
		}
	}
}

// reclaim frees released segment i: its space, then its slot.
func (p *Pool) reclaim(i uint32) {
	s := p.slot(i)
	if s.n > 0 {
		p.freeExtent(i, p.size(s.n))
	} else {
		p.freeSlotAt(i)
	}
}

// Info describes the segment: its offset (which changes when compaction
// moves it, unless it is latched), length and latch count.
func (p *Pool) Info(ref Ref) (Segment, error) {
	h, ok := p.lock()
	if !ok {
		return Segment{}, p.errorf("info", ref, ErrClosed)
	}
	defer p.unlock(h)
	s, w, err := p.lookup(ref, refMask)
	if err != nil {
		return Segment{}, p.errorf("info", ref, err)
	}
	return Segment{Offset: int(s.off), Len: int(s.n), Latches: int(latchesOf(w))}, nil
}

// Compact slides every unlatched segment down so that the free space not
// pinned between latched segments is one block at the end, and returns the
// bytes moved. Latched segments keep their offsets, and the free space
// around them stays as holes. A closed pool moves nothing.
func (p *Pool) Compact() int {
	h, ok := p.lock()
	if !ok {
		return 0
	}
	moved := p.compact()
	if check.On {
		p.checkAfterMutation()
	}
	p.unlock(h)
	return int(moved)
}
