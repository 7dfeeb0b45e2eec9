// The index: an open-addressing hash table of 8-byte slots, off the Go heap,
// that lock-free readers probe while one writer at a time changes it.

package cache

import (
	"math/bits"
	"sync/atomic"
)

// index maps key hashes to entry ids. A slot holds the upper 32 bits of the
// hash (the tag) and the id plus one; zero is empty, and a slot whose id
// part is zero but tag is not is a tombstone (a deleted slot that probes
// must pass). Probing is linear.
//
// Each table lives in one of two halves, each its own reservation. A rehash
// (growth, shrinking, or clearing tombstones) fills the other half and then
// publishes it in hdr, so readers probing the old table see it unchanged
// while they finish; a reader's miss is final only if hdr did not change
// during its probe. The old half's pages are then given back.
//
// Writers keep the slots in use (live and tombstones) at most 3/4 of the
// table, so a probe always ends at an empty slot; readers also stop after
// a whole table's worth of slots, in case they raced with a rehash into the
// half they are probing.
type index struct {
	halves      [2]offTable[uint64]
	hdr         atomic.Uint64 // rehash count << 8 | half << 6 | log2 of the table size
	live, tombs uint64        // guarded by the cache's lock
}

const (
	tombstone    = 1 << 32
	minIndexLog  = 6
	hdrHalfShift = 6
)

func slotOf(hash uint64, id uint32) uint64 { return hash&^(1<<32-1) | uint64(id) + 1 }
func tagOf(hash uint64) uint64             { return hash >> 32 }
func idOf(slot uint64) uint32              { return uint32(slot) - 1 } // valid when uint32(slot) != 0

// init reserves both halves for tables that hold up to maxEntries.
func (x *index) init(maxEntries uint64, name string) error {
	maxSlots := uint64(1) << max(minIndexLog, bits.Len64(maxEntries*8/3))
	for i := range x.halves {
		if err := x.halves[i].reserve(maxSlots, name); err != nil {
			return err
		}
	}
	x.hdr.Store(minIndexLog)
	return x.halves[0].grow(1 << minIndexLog)
}

// table returns the slots and mask hdr names.
func (x *index) table(hdr uint64) (*offTable[uint64], uint64) {
	return &x.halves[(hdr>>hdrHalfShift)&1], 1<<(hdr&63) - 1
}

func (x *index) load(t *offTable[uint64], i uint64) uint64 { return atomic.LoadUint64(t.at(i)) }

// bytes returns the memory of the table in use: a rehash gives the other
// half's pages back, so they do not count.
func (x *index) bytes() int {
	_, mask := x.table(x.hdr.Load())
	return pagesOf(int(mask+1) * 8)
}

// The writer's side; callers hold the cache's lock.

// slotFor returns the position of the slot holding id, whose hash is hash.
func (x *index) slotFor(hash uint64, id uint32) (*offTable[uint64], uint64) {
	t, mask := x.table(x.hdr.Load())
	want := slotOf(hash, id)
	for i := hash & mask; ; i = (i + 1) & mask {
		if x.load(t, i) == want {
			return t, i
		}
	}
}

// insert adds id (hash hash) to the index; the key must not be in it. It
// fails only if the table must grow and cannot (the OS refused memory).
func (x *index) insert(st *store, hash uint64, id uint32) error {
	_, mask := x.table(x.hdr.Load())
	if (x.live+x.tombs+1)*4 > (mask+1)*3 {
		if err := x.rehash(st, x.live+1); err != nil && x.live+x.tombs+2 > mask {
			return err // no empty slot would be left to end probes
		}
	}
	t, mask := x.table(x.hdr.Load())
	for i := hash & mask; ; i = (i + 1) & mask {
		if s := x.load(t, i); uint32(s) == 0 {
			if s == tombstone {
				x.tombs--
			}
			atomic.StoreUint64(t.at(i), slotOf(hash, id))
			x.live++
			return nil
		}
	}
}

// replace makes the slot of old (hash hash) name id instead: readers see one
// or the other, never neither.
func (x *index) replace(hash uint64, old, id uint32) {
	t, i := x.slotFor(hash, old)
	atomic.StoreUint64(t.at(i), slotOf(hash, id))
}

// remove deletes id (hash hash). Its slot becomes a tombstone, or empty
// when the next slot is empty (a probe would stop there anyway), and so do
// the tombstones before it.
func (x *index) remove(hash uint64, id uint32) {
	t, i := x.slotFor(hash, id)
	mask := uint64(1)<<(x.hdr.Load()&63) - 1
	x.live--
	if x.load(t, (i+1)&mask) != 0 {
		atomic.StoreUint64(t.at(i), tombstone)
		x.tombs++
		return
	}
	atomic.StoreUint64(t.at(i), 0)
	for i = (i - 1) & mask; x.load(t, i) == tombstone; i = (i - 1) & mask {
		atomic.StoreUint64(t.at(i), 0)
		x.tombs--
	}
}

// rehash moves the live slots into a table in the other half sized for
// want entries (live at most 3/8 of it), publishes it, and gives the old
// half's pages back. If the other half cannot grow, nothing changes.
func (x *index) rehash(st *store, want uint64) error {
	hdr := x.hdr.Load()
	old, oldMask := x.table(hdr)
	half := (hdr>>hdrHalfShift)&1 ^ 1
	nt := &x.halves[half]
	log := uint64(max(minIndexLog, bits.Len64(want*8/3)))
	if err := nt.grow(1 << log); err != nil {
		return err
	}
	mask := uint64(1)<<log - 1
	nt.clear(mask + 1)
	for i := range oldMask + 1 {
		s := x.load(old, i)
		if uint32(s) == 0 {
			continue
		}
		j := st.entry(idOf(s)).hash & mask
		for x.load(nt, j) != 0 {
			j = (j + 1) & mask
		}
		atomic.StoreUint64(nt.at(j), s)
	}
	x.tombs = 0
	x.hdr.Store((hdr>>8+1)<<8 | half<<hdrHalfShift | log)
	old.discard(0, oldMask+1)
	return nil
}
