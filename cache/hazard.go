// Hazard pins: Pin's fast path, which pins an entry without touching its
// word, and the writer's side of the protocol that makes such a pin safe.

package cache

import (
	"sync/atomic"

	"github.com/offheap/offheap/internal/proc"
)

// A hazard pin is a word, in a line of the P it was taken on, that names
// the pinned entry. Pin claims one with a CAS on that line, which stays in
// the core's cache, and never touches the entry's own word: what it read
// from the index (location, lengths, id) is validated by the bucket's
// sequence number, so the fast path reads no more memory than a copying
// Get.
//
// The writer's side: before an entry's pins matter (it is about to be
// evicted, deleted, replaced or overwritten in place), the writer, holding
// the lock, states its intent in the intent word its key's hash picks (a
// sequentially consistent store), then reads every line in use; a pinner
// claims its hazard (a CAS), then reads that intent word, the bucket's
// sequence number, the index header and the moves word. Each side's store
// precedes its loads in the one order all atomics share, so either the
// writer sees the hazard or the pinner sees the intent; and a pinner that
// reads the intent after the writer cleared it sees the bucket the writer
// changed before clearing it. A compaction, rebuild or Close changes the
// moves word, whose atomic add is the store, and reads every line.
//
// A hazard the writer sees it promotes: it adds a pin to the entry's word
// and marks the hazard promoted, so from then on every rule about pins
// (parking, gone entries freed by their last release, Close busy) holds as
// for any other pin, and the hazard's Release, finding it promoted, drops
// that pin from the word. A hazard may be one its pinner is about to
// withdraw (it failed to validate); promoting it pins an entry the pinner
// never uses, briefly, which is safe because the entry promoted is live or
// gone, never free (see promoteAt), and the withdrawal drops the pin.
//
// Invariants: a slot is ticket<<hazTicketShift | in use | promoted | id,
// with in use, promoted and id 0 while free; the ticket advances at each
// claim, so a Handle released twice matches nothing unless its slot was
// claimed again 2^30 times meanwhile; an unpromoted hazard that validated
// names a live or gone entry that no writer frees or changes; hazards are
// not in the per-P handle counts (Stats counts the slots in use); lines at or
// past used (but the shared one) have never held a hazard. An entry has at
// most one hazard per slot, plus the promoted pins of Releases between
// clearing their slot and dropping that pin (a handful: one per goroutine
// paused between two instructions), which is why Pin leaves 2*hazAll of the
// word's pin count for promotions (maxWordPins); 61423 word pins and over
// four thousand such goroutines at once would overflow it.
type hazLine struct {
	slots [hazSlots]uint64
}

const (
	hazSlots = 8
	hazLines = maxPs + 1 // one per P with state of its own, and one shared
	hazAll   = hazSlots * hazLines
	// hazIntents is the number of intent words, 8 to a cache line.
	hazIntents     = 64
	hazPromoted    = 1 << 32
	hazInUse       = 1 << 33
	hazTicketShift = 34
	// hazardKind marks a hazard Handle's epoch.
	hazardKind = 1 << 31
	// maxWordPins is the most pins Pin puts in an entry's word; promoted
	// hazards may take it to maxPins.
	maxWordPins = maxPins - 2*hazAll
)

// hazards is the table; it lives on the Go heap, not with the cache's other
// tables, so that a pinner withdrawing after Close, or a stale Release,
// still finds it mapped.
type hazards struct {
	lines   [hazLines]hazLine
	intents [hazIntents]uint64 // id+1 of the entry a writer is about to act on, or 0
	used    atomic.Uint32      // lines below it may have been used (the shared one aside)
}

// lineFor returns the line of P pid, and its number.
func (z *hazards) lineFor(pid int) (*hazLine, uint32) {
	i := uint32(min(pid, maxPs))
	if !perP {
		i = maxPs
	}
	if i < maxPs && i >= z.used.Load() {
		for u := z.used.Load(); u <= i && !z.used.CompareAndSwap(u, i+1); u = z.used.Load() {
		}
	}
	return &z.lines[i], i
}

// intent returns the intent word of a key whose hash is h.
func (z *hazards) intent(h uint64) *uint64 { return &z.intents[h>>22&(hazIntents-1)] }

// slot returns hazard slot pos (line*hazSlots + index), or nil if there is
// no such slot.
func (z *hazards) slot(pos uint32) *uint64 {
	if pos >= hazAll {
		return nil
	}
	return &z.lines[pos/hazSlots].slots[pos%hazSlots]
}

// inUse calls f with each line that may hold a hazard.
func (z *hazards) inUse(f func(*hazLine)) {
	for i := range z.used.Load() {
		f(&z.lines[i])
	}
	f(&z.lines[maxPs])
}

// hazardsOff turns Pin's fast path off, for tests of the other pins.
var hazardsOff = false

// pinHazard is Pin's fast path: it takes a hazard on the entry of st that
// peek found (p) after the moves word read m, for a key whose hash is h,
// and validates it. It reports false, having undone everything, if the
// line is full or the entry may have changed; the caller then goes the long
// way.
func (c *Cache) pinHazard(st *store, p *peeked, h, m uint64) (Handle, bool) {
	id := p.id
	pid := proc.Pin()
	ln, li := c.haz.lineFor(pid)
	i, old := ln.free()
	v := (old>>hazTicketShift+1)<<hazTicketShift | hazInUse | uint64(id)
	if i < 0 || !atomic.CompareAndSwapUint64(&ln.slots[i], old, v) {
		proc.Unpin()
		return Handle{}, false
	}
	pos := li*hazSlots + uint32(i)
	if atomic.LoadUint64(c.haz.intent(h)) == uint64(id)+1 || loadSeq(p.bk) != p.seq || st.idx.hdr.Load() != p.hdr || c.loadMoves() != m {
		proc.Unpin()
		c.withdraw(pos, v)
		return Handle{}, false
	}
	st.pol.hit(id, h)
	c.countHit(pid)
	proc.Unpin()
	return Handle{c: c, h: v, id: pos, epoch: st.epoch | hazardKind}, true
}

// free returns the index of a free slot of l and its value, or -1.
func (l *hazLine) free() (int, uint64) {
	for i := range l.slots {
		if v := atomic.LoadUint64(&l.slots[i]); v&hazInUse == 0 {
			return i, v
		}
	}
	return -1, 0
}

// freed is the value of a slot after hazard v's release: free, v's ticket.
func freed(v uint64) uint64 { return v >> hazTicketShift << hazTicketShift }

// withdraw frees hazard slot pos, which held v for a pin Pin will not hand
// out.
func (c *Cache) withdraw(pos uint32, v uint64) { c.dropHazard(c.haz.slot(pos), v) }

// releaseHazard is Release of a hazard Handle: one CAS, unless a writer
// promoted the hazard (see dropHazard).
func (c *Cache) releaseHazard(hd Handle) error {
	s := c.haz.slot(hd.id)
	if s == nil {
		return c.handleError(hd, ErrReleased)
	}
	if !c.dropHazard(s, hd.h) {
		return c.handleError(hd, c.releasedOrClosed())
	}
	return nil
}

// dropHazard frees slot s of hazard v and reports whether s held it. If a
// writer promoted it, it drops the pin that added from the current store:
// the one the promotion found, as no rebuild runs while the pin is out.
func (c *Cache) dropHazard(s *uint64, v uint64) bool {
	if atomic.CompareAndSwapUint64(s, v, freed(v)) {
		return true
	}
	if !atomic.CompareAndSwapUint64(s, v|hazPromoted, freed(v)) {
		return false
	}
	if last, weight, ok := c.unpin(c.cur(), uint32(v), false, 0); ok && last {
		c.addPinned(-weight)
	}
	return true
}

// guard states the writer's intent to act on live entry id of st, whose
// key's hash is h, and promotes its hazards: from its return until unguard,
// no hazard pin on id validates, so the entry's word shows all its pins.
// Callers hold the lock, and call unguard once the index shows the change.
func (c *Cache) guard(st *store, id uint32, h uint64) {
	atomic.StoreUint64(c.haz.intent(h), uint64(id)+1) // sequentially consistent: before the loads below
	c.promote(st, id, true)
}

// unguard ends guard.
func (c *Cache) unguard(h uint64) { atomic.StoreUint64(c.haz.intent(h), 0) }

// promote promotes the hazards on entry id of st (every hazard, if one is
// false, on entries live or gone). Callers hold the lock.
func (c *Cache) promote(st *store, id uint32, one bool) {
	c.haz.inUse(func(ln *hazLine) {
		for i := range ln.slots {
			v := atomic.LoadUint64(&ln.slots[i])
			if v&hazInUse == 0 || v&hazPromoted != 0 || one && uint32(v) != id {
				continue
			}
			c.promoteAt(st, &ln.slots[i], v)
		}
	})
}

// promoteAt adds a pin to the word of the entry hazard v (found in slot s)
// names, and marks the hazard promoted; if the hazard went meanwhile, it
// takes the pin back. It leaves alone a hazard on an entry neither live
// nor gone: one whose pinner found the entry before it was freed, and will
// fail to validate. Callers hold the lock, so no other writer changes the
// entry's state.
func (c *Cache) promoteAt(st *store, s *uint64, v uint64) {
	id := uint32(v)
	if uint64(id) >= st.ents.ready.Load() {
		return
	}
	e := st.entry(id)
	w := e.loadWord()
	for {
		if sv := stateOf(w); sv != stateLive && sv != stateGone {
			return
		}
		if e.casWord(w, w+pinOne) {
			break
		}
		w = e.loadWord()
	}
	// Whoever takes the pins from or to zero counts the bytes (see dropPin).
	if pinsOf(w) == 0 {
		c.addPinned(c.weight(keyLen(e.lens) + valLen(e.lens)))
	}
	if !atomic.CompareAndSwapUint64(s, v, v|hazPromoted) {
		if last, weight, _ := c.unpinHeld(st, id, false, 0); last {
			c.addPinned(-weight)
		}
	}
}

// promoteAll promotes every hazard: for a compaction, rebuild or Close,
// which has changed the moves word. Callers hold the lock.
func (c *Cache) promoteAll() { c.promote(c.cur(), 0, false) }

// hazardsOut counts the hazard slots in use. Callers hold the lock.
func (c *Cache) hazardsOut() (n int) {
	c.haz.inUse(func(ln *hazLine) {
		for i := range ln.slots {
			if atomic.LoadUint64(&ln.slots[i])&hazInUse != 0 {
				n++
			}
		}
	})
	return n
}
