// The entry table: one plain 32-byte struct per entry, and the state word
// that lock-free readers validate and pinners CAS.

package cache

import "sync/atomic"

// entry describes one cached key and value, which lie back to back in one
// pool segment: the key at off, the value after it.
//
// word is read and CASed without the lock (Pin, Release, and the readers
// that validate with it rather than with the index's location); the other
// fields are written only under the lock while the word does not say live,
// or (off) while a compaction holds the moves word odd. Lock-free readers
// discard what they read if the word's generation or state, or the moves
// word, changed meanwhile.
type entry struct {
	word uint64 // generation | state | parked | moving | pins; see below
	hash uint64 // the key's hash
	off  uint64 // offset of the segment in the pool; while free, the next free id
	lens uint64 // key length | value length << 32
}

// The state word: bits 0-31 the generation, 32-33 the state, 34 parked,
// 35 moving, 36 own, 37-47 the ticket, 48-63 the pin count.
//
// own says the entry's own handle is out: the first of its concurrent pins
// takes it with the same CAS that adds the pin, and its Release gives it
// back with the CAS that drops the pin, so a lone pin costs one atomic each
// way and no handle slot (see Handle). The ticket counts the own handle's
// uses, so that a stale own Handle (one released already) does not match
// the next; when it wraps, the generation advances (see ownReleased).
// Invariant: own implies at least one pin.
const (
	genMask     = 1<<32 - 1
	stateShift  = 32
	stateMask   = 3 << stateShift
	stateFree   = 0 // on the free-id stack, or never used
	stateLive   = 1 // in the index
	stateGone   = 2 // deleted, replaced or evicted while pinned: freed at the last release
	stateBusy   = 3 // its value is being overwritten in place (see Cache.rewrite): readers retry
	liveBits    = stateLive << stateShift
	goneBits    = stateGone << stateShift
	busyBits    = stateBusy << stateShift
	parkedBit   = 1 << 34 // the policy parked it (found pinned): unpark at the last release
	movingBit   = 1 << 35 // a compaction unlatched it to move it (see compact)
	ownBit      = 1 << 36 // its own handle is out
	ticketShift = 37
	ticketMask  = (1<<11 - 1) << ticketShift
	pinShift    = 48
	pinOne      = 1 << pinShift
	maxPins     = 1<<(64-pinShift) - 1
	identity    = genMask | stateMask // what a reader validates: same occupant, same state
	// ownIdentity is what an own Handle names: the occupant and the use.
	ownIdentity = genMask | ticketMask
)

func genOf(w uint64) uint32     { return uint32(w) }
func stateOf(w uint64) uint64   { return (w & stateMask) >> stateShift }
func pinsOf(w uint64) uint64    { return w >> pinShift }
func keyLen(lens uint64) uint64 { return lens & (1<<32 - 1) }
func valLen(lens uint64) uint64 { return lens >> 32 }

// freedWord is the word of an entry whose occupant is gone: the next
// generation, free, no flags or pins.
func freedWord(w uint64) uint64 { return uint64(genOf(w) + 1) }

func (e *entry) loadWord() uint64             { return atomic.LoadUint64(&e.word) }
func (e *entry) casWord(old, new uint64) bool { return atomic.CompareAndSwapUint64(&e.word, old, new) }
func (e *entry) loadHash() uint64             { return atomic.LoadUint64(&e.hash) }
func (e *entry) loadOff() uint64              { return atomic.LoadUint64(&e.off) }
func (e *entry) loadLens() uint64             { return atomic.LoadUint64(&e.lens) }

// markMoving sets the moving bit of a live entry without pins and reports
// whether it did; a pin makes it give up. Callers hold the lock.
func (e *entry) markMoving() bool {
	for {
		w := e.loadWord()
		if stateOf(w) != stateLive || pinsOf(w) != 0 {
			return false
		}
		if e.casWord(w, w|movingBit) {
			return true
		}
	}
}

// noID marks the end of a list of ids.
const noID = ^uint32(0)

// weight returns the bytes a segment of n bytes takes in the pool.
func (c *Cache) weight(n uint64) int64 { return int64((n + c.alignMask) &^ c.alignMask) }
