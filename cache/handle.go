// Pins and handles: an entry's pin count lives in its word (hazard pins,
// Pin's fast path, are in hazard.go until a writer promotes them). The first of
// an entry's concurrent pins takes the entry's own handle, a bit of the same
// word, so a lone pin costs one CAS to take and one to release; each further
// pin takes a handle slot, so a Handle released twice is caught even while
// other pins hold the entry. Free handle slots are kept per P, like the
// per-P counters, so Pin and Release touch no shared cache line but the
// entry's.

package cache

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/proc"
)

// Handle keeps a pinned entry: its view stays valid, unchanged, until
// Release. The zero Handle is never valid.
//
// A Handle is a hazard pin's (epoch has hazardKind; see hazLine), an
// entry's own (epoch is set) or a slot's. A hazard Handle names its hazard
// slot (id) and the value it put there (h), whose ticket tells it from
// later pins in the same slot. An own Handle
// names the store (by its epoch, not a pointer: a released Handle a program
// keeps must not keep a retired store's memory), the entry and the word's
// generation and ticket: its Release succeeds only while the word still
// shows that own handle out, and no rebuild (which replaces the store) runs
// while pins are out. The ticket advances at each release and the
// generation when the ticket wraps (see ownReleased), so a stale own Handle
// matches nothing unless the entry's own handle was taken again 2^43 times
// meanwhile.
type Handle struct {
	c     *Cache
	h     uint64 // a slot's generation << 32 | slot index + 1; an own Handle's word & ownIdentity
	id    uint32 // an own Handle's entry
	epoch uint32 // an own Handle's store's epoch; 0 for a slot's
}

// own reports whether hd is an entry's own handle, not a slot's.
func (hd Handle) own() bool { return hd.epoch != 0 && hd.epoch&hazardKind == 0 }

// hazard reports whether hd is a hazard pin's (see hazLine).
func (hd Handle) hazard() bool { return hd.epoch&hazardKind != 0 }

// hslot is one handle: free, or out for an entry.
type hslot struct {
	word  uint64 // generation | handleOut
	entry uint32 // the pinned entry, while out
	next  uint32 // the next free slot, on the shared stack
}

const (
	handleOut  = 1 << 32
	maxHandles = 1 << 26 // handle slots out at once
	// hcacheCap is how many free handle slots each P keeps.
	hcacheCap = 54
	// maxPs bounds the Ps with state of their own; the state after
	// theirs is shared, with atomic counters, by Ps numbered higher and by
	// the race-detector and checked builds.
	maxPs = 256
)

// pstate is one P's counters and free handle slots, alone on its cache
// lines. It lives off the Go heap: while pinned to the P, only goroutines on
// that P touch it, one at a time; Stats reads it racily, which for aligned
// words only risks a sum a little stale.
type pstate struct {
	hits, misses uint64
	pinned       int64 // net bytes this P saw become pinned (pins and releases may be on different Ps)
	out          int64 // net handles this P handed out
	n            uint64
	free         [hcacheCap]uint32
}

// perP says whether handles and counters use the per-P state. The race
// detector cannot see the ownership a pin gives, and the checked build
// checks under the lock, so both use the shared stack and atomic counters.
const perP = !check.On && !proc.Race

// errChanged reports that the entry a reader found changed before its pin.
var errChanged = errors.New("entry changed")

// pin pins entry id of st, which the caller found with word w and lengths
// lens after loading the moves word m, counts a hit, tells the policy, and
// returns a Handle. It fails with errChanged if the entry's occupant or
// state changed since w, or the moves word since m (a compaction or rebuild
// began, so the offset the caller read may be stale; the pin is undone).
// The moves word is checked after the pin's CAS, so a compaction either
// sees the pin or is seen; and the hit is told in the same pinned section
// as that check (see hit). The fast path also takes the handle slot, if the
// pin needs one, from this P's cache in that section.
func (c *Cache) pin(st *store, id uint32, w, h, lens, m uint64) (Handle, error) {
	weight := c.weight(keyLen(lens) + valLen(lens))
	if perP {
		if hd, done, err := c.pinFast(st, id, w, h, m, weight); done {
			return hd, err
		}
	}
	// A pin that finds the own handle out takes a slot first, so it never
	// has to drop a pin for want of one: the drop might be a parked
	// entry's last, which takes the write lock, and pinLocked holds the
	// read lock.
	e, slot, haveSlot := st.entry(id), uint32(0), false
	old, err := e.pin(w, haveSlot)
	for err == errNoSlot {
		if slot, err = c.newHandle(); err != nil {
			return Handle{}, err
		}
		haveSlot = true
		old, err = e.pin(old, haveSlot)
	}
	if err != nil {
		if haveSlot {
			c.freeHandle(slot, 0, false, 0)
		}
		return Handle{}, err
	}
	hd := c.ownHandle(st, id, old)
	switch {
	case !tookOwn(old):
		hd = c.handleFor(slot, id)
	case haveSlot:
		c.freeHandle(slot, 0, false, 0)
	}
	if !c.hit(st, id, h, m) {
		c.undoPin(st, hd, old, weight)
		return Handle{}, errChanged
	}
	c.countPin(1, pinsOf(old) == 0, weight)
	return hd, nil
}

// pinFast is pin with this P's state, all in one pinned section; done is
// false if this P has no free handle slot, and nothing was done. (It does
// not pin without a slot in hand, hoping for the own handle: if that was
// taken meanwhile, the pin would have to be dropped, and the drop may be a
// parked entry's last pin, which takes the write lock; pinLocked holds the
// read lock.)
func (c *Cache) pinFast(st *store, id uint32, w, h, m uint64, weight int64) (hd Handle, done bool, err error) {
	pid := proc.Pin()
	ps := c.pstate(pid)
	if ps == nil || ps.n == 0 {
		proc.Unpin()
		return Handle{}, false, nil
	}
	old, err := st.entry(id).pin(w, true)
	switch {
	case err != nil:
		proc.Unpin()
		return Handle{}, true, err
	case c.loadMoves() != m:
		proc.Unpin()
		c.dropPin(st, id, old, weight)
		return Handle{}, true, errChanged
	}
	ps.tookPin(st, id, h, old, weight)
	if tookOwn(old) {
		proc.Unpin()
		return c.ownHandle(st, id, old), true, nil
	}
	ps.n--
	slot := ps.free[ps.n]
	proc.Unpin()
	return c.handleFor(slot, id), true, nil
}

// tookPin tells st's policy of the hit on entry id and counts, in this P's
// state, a pin that replaced word old. Callers are pinned to ps's P.
func (ps *pstate) tookPin(st *store, id uint32, h, old uint64, weight int64) {
	st.pol.hit(id, h)
	ps.out++
	ps.hits++
	if pinsOf(old) == 0 {
		ps.pinned += weight
	}
}

// ownHandle is the Handle of entry id's own handle, taken by the pin that
// replaced word old in st.
func (c *Cache) ownHandle(st *store, id uint32, old uint64) Handle {
	return Handle{c: c, h: old & ownIdentity, id: id, epoch: st.epoch}
}

// pin adds a pin to e, whose word was w, taking e's own handle if it is
// not out, and returns the word before it. Without a slot in hand (slot
// false) it pins only if it can take the own handle, and otherwise returns
// the word it found and errNoSlot.
func (e *entry) pin(w uint64, slot bool) (uint64, error) {
	for {
		switch {
		case pinsOf(w) >= maxWordPins:
			return 0, fmt.Errorf("%d pins on one entry: %w", pinsOf(w), ErrBusy)
		case w&ownBit != 0 && !slot:
			return w, errNoSlot
		}
		if e.casWord(w, (w+pinOne)|ownBit) {
			return w, nil
		}
		nw := e.loadWord()
		if nw&identity != w&identity {
			return 0, errChanged
		}
		w = nw
	}
}

// errNoSlot reports that a pin needs a handle slot it does not have.
var errNoSlot = errors.New("pin needs a handle slot")

// tookOwn reports whether the pin that replaced word old took the entry's
// own handle.
func tookOwn(old uint64) bool { return old&ownBit == 0 }

// ownReleased is word w after its own handle's Release: one pin fewer, the
// own handle back, the next ticket. When the ticket wraps, the entry takes
// the next generation instead (readers that went by the old one retry), so
// that no stale own Handle can match a later one for 2^43 uses; a
// generation is never raised to the last, which only freeing gives (see
// pushID).
func ownReleased(w uint64) uint64 {
	nw := (w - pinOne) &^ ownBit
	switch {
	case w&ticketMask != ticketMask:
		return nw + 1<<ticketShift
	case genOf(w) < genMask-1:
		return nw&^ticketMask + 1
	}
	return nw &^ ticketMask
}

// holdsOwn reports whether word w shows the own handle that tag names out.
func holdsOwn(w, tag uint64) bool { return w&(ownIdentity|ownBit) == tag|ownBit && pinsOf(w) > 0 }

// handleFor marks handle slot out for entry id and returns its Handle. The
// stores need no ordering: whoever releases the Handle got it from this
// goroutine through the caller's own synchronisation.
func (c *Cache) handleFor(slot, id uint32) Handle {
	s := c.hslots.at(uint64(slot))
	s.entry = id
	gen := genOf(s.word)
	s.word = uint64(gen) | handleOut
	return Handle{c: c, h: uint64(gen)<<32 | uint64(slot) + 1}
}

// Release drops the pin. The entry may be evicted again once no pins are
// left, and an entry deleted or replaced while pinned is freed by its last
// Release. Releasing a Handle twice, or the zero Handle, is ErrReleased.
func (hd Handle) Release() error {
	c := hd.c
	if c == nil {
		return fmt.Errorf("cache: release handle 0: %w", ErrReleased)
	}
	if check.On {
		c.mu.RLock()
		defer c.mu.RUnlock()
		if c.closed {
			return c.handleError(hd, ErrClosed)
		}
	}
	if hd.hazard() {
		return c.releaseHazard(hd)
	}
	if hd.own() {
		if c.releaseOwnFast(hd) {
			return nil
		}
		return c.releaseOwn(hd)
	}
	i, gen := uint32(hd.h)-1, uint32(hd.h>>32)
	if uint64(i) >= c.hslots.ready.Load() {
		return c.handleError(hd, ErrReleased)
	}
	s := c.hslots.at(uint64(i))
	if !atomic.CompareAndSwapUint64(&s.word, uint64(gen)|handleOut, uint64(gen+1)) {
		return c.handleError(hd, c.releasedOrClosed())
	}
	// No rebuild runs while pins are out (see rebuild), so the entry is in
	// the current store.
	edge, weight, _ := c.unpin(c.cur(), s.entry, false, 0)
	if check.On && c.closed {
		// unpinLocked traded the read lock for the write lock and back
		// after dropping the last pin, so a Close may have run meanwhile,
		// and the checked build unmaps the handle slots at once.
		return nil
	}
	c.freeHandle(i, -1, edge, weight)
	return nil
}

// releaseOwnFast is releaseOwn's fast path: one CAS, when the pin is not
// an entry's last with work to do; it reports whether it released.
func (c *Cache) releaseOwnFast(hd Handle) bool {
	st := c.cur()
	if !perP || st.epoch != hd.epoch || uint64(hd.id) >= st.ents.ready.Load() {
		return false
	}
	e := st.entry(hd.id)
	w := e.loadWord()
	if !holdsOwn(w, hd.h) || pinsOf(w) == 1 && (w&parkedBit != 0 || stateOf(w) == stateGone) {
		return false
	}
	lens := e.loadLens() // while the pin holds the entry; the CAS checks it still did
	if !e.casWord(w, ownReleased(w)) {
		return false
	}
	c.countPin(-1, pinsOf(w) == 1, c.weight(keyLen(lens)+valLen(lens)))
	return true
}

// releaseOwn is Release of an own Handle. A valid one's store is current:
// no rebuild runs while pins are out.
func (c *Cache) releaseOwn(hd Handle) error {
	st := c.cur()
	if st.epoch != hd.epoch || uint64(hd.id) >= st.ents.ready.Load() {
		return c.handleError(hd, c.releasedOrClosed())
	}
	last, weight, ok := c.unpin(st, hd.id, true, hd.h)
	if !ok {
		return c.handleError(hd, c.releasedOrClosed())
	}
	if check.On && c.closed {
		return nil // as for a slot's, above
	}
	c.countPin(-1, last, weight)
	return nil
}

// releasedOrClosed is why a Handle that names no pin out was refused.
func (c *Cache) releasedOrClosed() error {
	if c.loadMoves()&movesClosed != 0 {
		return ErrClosed
	}
	return ErrReleased
}

// undoPin releases a pin Pin took in st, not yet counted, and will not hand
// out, because a compaction or rebuild began meanwhile: a rebuild switches
// stores, so the entry is unpinned where it was pinned, not where Release
// would look. old is the entry's word before the pin; weight is the entry's.
func (c *Cache) undoPin(st *store, hd Handle, old uint64, weight int64) {
	if hd.own() {
		c.dropPin(st, hd.id, old, weight)
		return
	}
	i, gen := uint32(hd.h)-1, uint32(hd.h>>32)
	s := c.hslots.at(uint64(i))
	if atomic.CompareAndSwapUint64(&s.word, uint64(gen)|handleOut, uint64(gen+1)) {
		c.dropPin(st, s.entry, old, weight)
		c.freeHandle(i, 0, false, 0)
	}
}

// dropPin drops a pin Pin took on entry id of st, of weight bytes, and will
// not hand out, and counts the bytes it pinned and unpinned; old is the
// word the pin replaced. The bytes pinned stay right only if whoever takes
// an entry's pins from or to zero counts it, whatever happens next: this
// pin, if first, pinned the entry (another pinner may still hold it, and its
// Release will count the last), and this drop, if last, unpinned it
// (another pinner may have made the first). A rebuild that freed the entry
// meanwhile counted its pins gone (see freeMoved).
func (c *Cache) dropPin(st *store, id uint32, old uint64, weight int64) {
	b := int64(0)
	if pinsOf(old) == 0 {
		b += weight
	}
	if last, _, _ := c.unpin(st, id, tookOwn(old), old&ownIdentity); last {
		b -= weight
	}
	if b != 0 {
		c.addPinned(b)
	}
}

func (c *Cache) handleError(hd Handle, err error) error {
	if hd.hazard() {
		return fmt.Errorf("%s: release hazard handle %d.%d: %w", c.label, hd.id, hd.h>>hazTicketShift, err)
	}
	if hd.own() {
		return fmt.Errorf("%s: release handle of entry %d.%d.%d: %w", c.label, hd.id, genOf(hd.h), hd.h&ticketMask>>ticketShift, err)
	}
	return fmt.Errorf("%s: release handle %d.%d: %w", c.label, uint32(hd.h)-1, hd.h>>32, err)
}

// unpin drops one pin of entry id: the own handle's that tag names if own,
// else a slot's. It reports whether it was the last, the entry's weight,
// and, for an own handle, whether the word showed it out (ok). The last pin
// of a gone entry frees it, and the last of a parked one puts it back in
// the policy's order: both under the lock.
func (c *Cache) unpin(st *store, id uint32, own bool, tag uint64) (last bool, weight int64, ok bool) {
	e := st.entry(id)
	for {
		w := e.loadWord()
		if own && !holdsOwn(w, tag) {
			return false, 0, false
		}
		if pinsOf(w) == 0 {
			return false, 0, false // the cache closed and its memory went; nothing to drop
		}
		// Read while the pin holds the entry (the CAS below validates
		// that it still did): once the last pin is dropped it may be
		// evicted and its id reused, or its store retired.
		lens := e.loadLens()
		weight = c.weight(keyLen(lens) + valLen(lens))
		if pinsOf(w) == 1 && (w&parkedBit != 0 || stateOf(w) == stateGone) {
			return c.unpinLocked(st, id, own, tag)
		}
		if e.casWord(w, unpinned(w, own)) {
			return pinsOf(w) == 1, weight, true
		}
	}
}

// unpinned is word w after dropping one pin, the own handle's if own.
func unpinned(w uint64, own bool) uint64 {
	if own {
		return ownReleased(w)
	}
	return w - pinOne
}

// unpinLocked is unpin under the lock, for a last pin that has work to do.
func (c *Cache) unpinLocked(st *store, id uint32, own bool, tag uint64) (last bool, weight int64, ok bool) {
	if !check.On {
		c.mu.Lock()
		defer c.mu.Unlock()
	} else {
		// Release holds the read lock in the checked build; trade it.
		c.mu.RUnlock()
		c.mu.Lock()
		defer func() { c.mu.Unlock(); c.mu.RLock() }()
	}
	return c.unpinHeld(st, id, own, tag)
}

// unpinHeld is unpinLocked's work, for callers that hold the lock.
func (c *Cache) unpinHeld(st *store, id uint32, own bool, tag uint64) (last bool, weight int64, ok bool) {
	e := st.entry(id)
	for {
		w := e.loadWord()
		if own && !holdsOwn(w, tag) || pinsOf(w) == 0 {
			return false, 0, false
		}
		nw := unpinned(w, own)
		if pinsOf(nw) == 0 {
			nw &^= parkedBit
		}
		if !e.casWord(w, nw) {
			continue
		}
		weight = c.weight(keyLen(e.lens) + valLen(e.lens))
		switch {
		case pinsOf(nw) > 0:
		case stateOf(nw) == stateGone:
			c.gone -= weight
			st.free(id)
		case w&parkedBit != 0 && !c.closed && st == c.cur():
			st.pol.unpark(id)
		}
		c.checkAfterMutation()
		return pinsOf(nw) == 0, weight, true
	}
}

// pinnedForPolicy is the pinned callback given to the policy's victim: it
// reports whether entry id has pins, and if so marks it parked (the policy
// parks it), so that its last Release unparks it. The mark is set with a CAS
// on the word, so a Release racing with it either sees it or leaves pins
// for the policy to see. Callers hold the lock.
func (c *Cache) pinnedForPolicy(id uint32) bool {
	st := c.cur()
	e := st.entry(id)
	c.promote(st, id, true)
	for {
		w := e.loadWord()
		if pinsOf(w) == 0 {
			return false
		}
		if w&parkedBit != 0 || e.casWord(w, w|parkedBit) {
			return true
		}
	}
}

// handleStack is the shared stack of free handle slots, behind the per-P
// caches.
type handleStack struct {
	mu      sync.Mutex
	free    uint32 // top of the stack, or noID
	n       uint32 // slots ever used
	retired int
	out     atomic.Int64 // handles out, when not counted per P
	pinned  atomic.Int64 // bytes pinned, when not counted per P
}

func (s *handleStack) init() { s.free = noID }

// newHandle takes a free handle slot: from this P's cache, or a batch from
// the shared stack.
func (c *Cache) newHandle() (uint32, error) {
	if perP {
		pid := proc.Pin()
		if pid < maxPs {
			if ps := c.pcs.at(uint64(pid)); ps.n > 0 {
				ps.n--
				i := ps.free[ps.n]
				proc.Unpin()
				return i, nil
			}
		}
		proc.Unpin()
	}
	var batch [hcacheCap / 2]uint32
	n, err := c.takeHandles(batch[:])
	if err != nil {
		return 0, err
	}
	if n > 1 {
		c.stashHandles(batch[1:n])
	}
	return batch[0], nil
}

// takeHandles fills dst with free slots from the shared stack, or fresh
// ones; it fails only if it found none.
func (c *Cache) takeHandles(dst []uint32) (int, error) {
	s := &c.handles
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for ; n < len(dst) && s.free != noID; n++ {
		dst[n] = s.free
		s.free = c.hslots.at(uint64(s.free)).next
	}
	if n == 0 {
		for ; n < len(dst) && uint64(s.n) < c.hslots.max; n++ {
			if c.hslots.grow(uint64(s.n)+1) != nil {
				break
			}
			dst[n] = s.n
			s.n++
		}
	}
	if n == 0 {
		return 0, fmt.Errorf("%d handles out: %w", s.n, ErrBusy)
	}
	return n, nil
}

// stashHandles puts free slots in this P's cache, and on the shared stack
// what does not fit.
func (c *Cache) stashHandles(slots []uint32) {
	if perP {
		pid := proc.Pin()
		if pid < maxPs {
			ps := c.pcs.at(uint64(pid))
			k := copy(ps.free[ps.n:], slots)
			ps.n += uint64(k)
			slots = slots[k:]
		}
		proc.Unpin()
	}
	c.pushHandles(slots)
}

// freeHandle returns slot i, already marked free, and counts d handles out
// (and weight bytes unpinned if last): to this P's cache, or, when that is
// full, half of it and i to the shared stack.
func (c *Cache) freeHandle(i uint32, d int64, last bool, weight int64) {
	var spill [hcacheCap/2 + 1]uint32
	n := 0
	if perP && genOf(c.hslots.at(uint64(i)).word) != genMask {
		pid := proc.Pin()
		if pid < maxPs {
			ps := c.pcs.at(uint64(pid))
			ps.out += d
			if last {
				ps.pinned -= weight
			}
			d, last = 0, false
			if ps.n < hcacheCap {
				ps.free[ps.n] = i
				ps.n++
				proc.Unpin()
				return
			}
			n = copy(spill[:], ps.free[hcacheCap/2:])
			ps.n = hcacheCap / 2
		}
		proc.Unpin()
	}
	if d != 0 || last {
		c.countPin(d, last, weight)
	}
	spill[n] = i
	c.pushHandles(spill[:n+1])
}

// pushHandles puts free slots on the shared stack; a slot whose generation
// reached the last is retired instead, so no stale Handle can ever name a
// later pin in it.
func (c *Cache) pushHandles(slots []uint32) {
	if len(slots) == 0 {
		return
	}
	s := &c.handles
	s.mu.Lock()
	for _, i := range slots {
		hs := c.hslots.at(uint64(i))
		if genOf(hs.word) == genMask {
			s.retired++
			continue
		}
		hs.next, s.free = s.free, i
	}
	s.mu.Unlock()
}

// countPin counts a handle out (d = 1) or back (d = -1), and weight bytes
// pinned or unpinned if the entry's pin count went from or to zero.
func (c *Cache) countPin(d int64, edge bool, weight int64) {
	b := int64(0)
	if edge {
		b = d * weight
	}
	c.countHandles(d, b)
}

// addPinned counts b bytes more (or, if negative, fewer) pinned.
func (c *Cache) addPinned(b int64) { c.countHandles(0, b) }

// countHandles adds d to the handles out and b to the bytes pinned, in this P's
// counters when it has some.
func (c *Cache) countHandles(d, b int64) {
	if perP {
		pid := proc.Pin()
		if pid < maxPs {
			ps := c.pcs.at(uint64(pid))
			ps.out += d
			ps.pinned += b
			proc.Unpin()
			return
		}
		proc.Unpin()
	}
	c.handles.out.Add(d)
	c.handles.pinned.Add(b)
}

// pstate returns P pid's state, or nil for a P numbered past maxPs.
func (c *Cache) pstate(pid int) *pstate {
	if pid >= maxPs {
		return nil
	}
	return c.pcs.at(uint64(pid))
}

// hit counts a hit on entry id of st, whose key's hash is h, and tells
// st's policy, unless the moves word is no
// longer m (a rebuild may have retired st and freed its policy); it reports
// whether it counted. The check and the call share one pinned section, so a
// writer that changed the moves word and then ran proc.Quiesce knows no
// reader is still telling st's policy anything.
func (c *Cache) hit(st *store, id uint32, h, m uint64) bool {
	pid := proc.Pin()
	if c.loadMoves() != m {
		proc.Unpin()
		return false
	}
	st.pol.hit(id, h)
	c.countHit(pid)
	proc.Unpin()
	return true
}

// countHit counts a hit on P pid, to which the caller is pinned.
func (c *Cache) countHit(pid int) {
	if perP && pid < maxPs {
		c.pcs.at(uint64(pid)).hits++
	} else {
		atomic.AddUint64(&c.pcs.at(maxPs).hits, 1)
	}
}

// miss counts a miss of a key whose hash is h and tells st's policy, as
// hit does.
func (c *Cache) miss(st *store, h uint64, m uint64) bool {
	pid := proc.Pin()
	if c.loadMoves() != m {
		proc.Unpin()
		return false
	}
	st.pol.miss(h)
	if perP && pid < maxPs {
		c.pcs.at(uint64(pid)).misses++
	} else {
		atomic.AddUint64(&c.pcs.at(maxPs).misses, 1)
	}
	proc.Unpin()
	return true
}
