// The index: an open-addressing hash table of cache-line buckets, off the
// Go heap, that lock-free readers probe while one writer at a time changes
// it.

package cache

import (
	"sync/atomic"

	"github.com/offheap/offheap/internal/fence"
)

// index maps key hashes to entries. It is an array of buckets, one cache
// line each: a sequence number and three slots. A slot holds the upper 32
// bits of the hash (the tag) and the entry's id plus one, and the entry's
// location (see locOf); a key word of zero is empty, and one whose id part
// is zero but tag is not is a tombstone (a deleted slot that probes must
// pass). Probing is linear, slot by slot, from the first slot of the
// bucket the hash picks (by multiplication, so any number of buckets
// works).
//
// The location lets a reader go from the slot straight to the key and
// value, without the entry: it validates what it read with the bucket's
// sequence number, which the writer makes odd while it changes any slot of
// the bucket and even again after, as in a seqlock. So the location is
// always right, or zero (readers then ask the entry): the writer changes it
// before an entry's segment is freed or moved, and a segment is freed only
// after its slot changed (see Cache.detach, evictOne and compact). A reader
// that saw the same even sequence number before reading the slot and after
// copying the value read a slot that named a live entry throughout, and
// that entry's own bytes.
//
// Each table lives in one of two halves, each its own reservation. A rehash
// (growth, shrinking, or clearing tombstones) fills the other half and then
// publishes it in hdr, so readers probing the old table see it unchanged
// while they finish; a reader's miss is final only if hdr did not change
// during its probe. The old half's pages are then given back.
//
// Writers keep the slots in use (live and tombstones) at most 3/4 of the
// table, so a probe always ends at an empty slot; readers also stop after a
// whole table's worth of buckets, in case they raced with a rehash into the
// half they are probing.
type index struct {
	halves      [2]offTable[bucket]
	hdr         atomic.Uint64 // rehash count << 33 | half << 32 | number of buckets
	live, tombs uint64        // guarded by the cache's lock
	adds        uint64        // inserts and replaces so far: a key absent stays so while it is unchanged
}

// bucket is one cache line of the index.
type bucket struct {
	seq   uint64 // odd while the writer changes a slot
	slots [bucketSlots]slot
	_     uint64
}

// slot is one key's place in the index: what the key word says, and where
// the entry's key and value are.
type slot struct{ key, loc uint64 }

const (
	bucketSlots  = 3
	tombstone    = 1 << 32
	minBuckets   = 64 // a page
	hdrHalfShift = 32
)

func keyOf(hash uint64, id uint32) uint64 { return hash&^(1<<32-1) | uint64(id) + 1 }
func tagOf(hash uint64) uint64            { return hash >> 32 }
func idOf(key uint64) uint32              { return uint32(key) - 1 } // valid when uint32(key) != 0

// A location is the offset of an entry's segment in the pool, its key
// length and its value length, packed as off<<24 | vl<<8 | kl, for entries
// whose sizes fit (keys under 256 bytes, values under 64 KiB, offsets under
// 1 TiB); 0 means none, for the others.
const (
	locKeyBits = 8
	locValBits = 16
	locOffBits = 64 - locKeyBits - locValBits
)

// locOf returns the location of a segment at off with a key of kl bytes and
// a value of vl, or 0 if it does not fit (kl is never 0).
func locOf(off, kl, vl uint64) uint64 {
	if kl >= 1<<locKeyBits || vl >= 1<<locValBits || off >= 1<<locOffBits {
		return 0
	}
	return off<<(locKeyBits+locValBits) | vl<<locKeyBits | kl
}

// unloc returns the offset, key length and value length of a location.
func unloc(loc uint64) (off, kl, vl uint64) {
	return loc >> (locKeyBits + locValBits), loc & (1<<locKeyBits - 1), loc >> locKeyBits & (1<<locValBits - 1)
}

// bucketsFor returns the number of buckets a rehash makes for n entries:
// slots for twice as many, whole pages of them.
func bucketsFor(n uint64) uint64 {
	b := (2*n + bucketSlots - 1) / bucketSlots
	return max(minBuckets, (b+minBuckets-1)/minBuckets*minBuckets)
}

// init reserves both halves for tables that hold up to maxEntries.
func (x *index) init(maxEntries uint64, name string) error {
	most := bucketsFor(maxEntries + 1)
	for i := range x.halves {
		if err := x.halves[i].reserve(most, name); err != nil {
			return err
		}
	}
	x.hdr.Store(minBuckets)
	return x.halves[0].grow(minBuckets)
}

// table returns the buckets hdr names and their number.
func (x *index) table(hdr uint64) (*offTable[bucket], uint64) {
	return &x.halves[hdr>>hdrHalfShift&1], hdr & (1<<hdrHalfShift - 1)
}

// home returns the bucket a probe for hash starts at, of n.
func home(hash, n uint64) uint64 { return uint64(uint32(hash)) * n >> 32 }

// next returns the bucket after b, of n.
func next(b, n uint64) uint64 {
	if b++; b == n {
		return 0
	}
	return b
}

func loadSeq(b *bucket) uint64        { return atomic.LoadUint64(&b.seq) }
func loadKey(b *bucket, j int) uint64 { return atomic.LoadUint64(&b.slots[j].key) }
func loadLoc(b *bucket, j int) uint64 { return atomic.LoadUint64(&b.slots[j].loc) }

// bytes returns the memory of the table in use: a rehash gives the other
// half's pages back, so they do not count.
func (x *index) bytes() int {
	_, n := x.table(x.hdr.Load())
	return pagesOf(int(n) * sizeOf[bucket]())
}

// slots returns the number of slots of the table in use.
func (x *index) slots() uint64 {
	_, n := x.table(x.hdr.Load())
	return n * bucketSlots
}

// The writer's side; callers hold the cache's lock.

// write sets slot j of bucket b to key and loc, the sequence number odd
// meanwhile.
func write(b *bucket, j int, key, loc uint64) {
	seq := beginWrite(b)
	fence.StoreRelease(&b.slots[j].key, key)
	fence.StoreRelease(&b.slots[j].loc, loc)
	endWrite(b, seq)
}

// beginWrite makes bucket b's sequence number odd, before anything the
// writer stores next: a slot, or the bytes of a segment a slot names or no
// longer names. Only the writer, under the cache's lock, stores to a
// bucket, so these are release stores, not read-modify-writes; fence.Store
// keeps the odd number ahead of what follows. It returns the number for
// endWrite.
func beginWrite(b *bucket) (seq uint64) {
	seq = atomic.LoadUint64(&b.seq)
	fence.StoreRelease(&b.seq, seq+1)
	fence.Store()
	return seq
}

// endWrite makes bucket b's sequence number even again, after everything
// stored since beginWrite returned seq.
func endWrite(b *bucket, seq uint64) { fence.StoreRelease(&b.seq, seq+2) }

// slotFor returns the bucket of the table in use holding id (hash hash),
// its number and the slot's.
func (x *index) slotFor(hash uint64, id uint32) (bk *bucket, b uint64, j int) {
	t, n := x.table(x.hdr.Load())
	want := keyOf(hash, id)
	for b = home(hash, n); ; b = next(b, n) {
		bk = t.at(b)
		for j = range bucketSlots {
			if loadKey(bk, j) == want {
				return bk, b, j
			}
		}
	}
}

// insert adds id (hash hash), located at loc, to the index; the key must
// not be in it. It fails only if the table must grow and cannot (the OS
// refused memory).
func (x *index) insert(st *store, hash uint64, id uint32, loc uint64) error {
	if slots := x.slots(); (x.live+x.tombs+1)*4 > slots*3 {
		if err := x.rehash(st, x.live+1); err != nil && x.live+x.tombs+2 > slots {
			return err // no empty slot would be left to end probes
		}
	}
	t, n := x.table(x.hdr.Load())
	for b := home(hash, n); ; b = next(b, n) {
		bk := t.at(b)
		for j := range bucketSlots {
			if k := loadKey(bk, j); uint32(k) == 0 {
				if k == tombstone {
					x.tombs--
				}
				write(bk, j, keyOf(hash, id), loc)
				x.live++
				x.adds++
				return nil
			}
		}
	}
}

// replace makes the slot of old (hash hash) name id, located at loc,
// instead: readers see one or the other, never neither.
func (x *index) replace(hash uint64, old, id uint32, loc uint64) {
	bk, _, j := x.slotFor(hash, old)
	write(bk, j, keyOf(hash, id), loc)
	x.adds++
}

// relocate sets the location in id's slot (hash hash): 0 before its
// segment is freed, its new place after it moved.
func (x *index) relocate(hash uint64, id uint32, loc uint64) {
	bk, _, j := x.slotFor(hash, id)
	write(bk, j, keyOf(hash, id), loc)
}

// remove deletes id (hash hash). Its slot becomes a tombstone, or empty
// when the next slot is empty (a probe would stop there anyway), and so do
// the tombstones before it.
func (x *index) remove(hash uint64, id uint32) {
	t, n := x.table(x.hdr.Load())
	bk, b, j := x.slotFor(hash, id)
	x.live--
	if nb, nj := step(b, j, n, 1); loadKey(t.at(nb), nj) != 0 {
		write(bk, j, tombstone, 0)
		x.tombs++
		return
	}
	write(bk, j, 0, 0)
	for {
		b, j = step(b, j, n, -1)
		if bk = t.at(b); loadKey(bk, j) != tombstone {
			return
		}
		write(bk, j, 0, 0)
		x.tombs--
	}
}

// step returns the slot d (1 or -1) slots from slot j of bucket b, in a
// table of n buckets.
func step(b uint64, j int, n uint64, d int) (uint64, int) {
	j += d
	switch {
	case j == bucketSlots:
		return next(b, n), 0
	case j < 0 && b == 0:
		return n - 1, bucketSlots - 1
	case j < 0:
		return b - 1, bucketSlots - 1
	}
	return b, j
}

// rehash moves the live slots into a table in the other half sized for
// want entries (see bucketsFor), publishes it, and gives the old half's
// pages back. If the other half cannot grow, nothing changes.
func (x *index) rehash(st *store, want uint64) error {
	hdr := x.hdr.Load()
	old, oldN := x.table(hdr)
	half := hdr>>hdrHalfShift&1 ^ 1
	nt := &x.halves[half]
	n := bucketsFor(want)
	if err := nt.grow(n); err != nil {
		return err
	}
	nt.clear(n)
	for b := range oldN {
		ob := old.at(b)
		for j := range bucketSlots {
			k := loadKey(ob, j)
			if uint32(k) == 0 {
				continue
			}
			x.place(nt, n, st.entry(idOf(k)).hash, k, loadLoc(ob, j))
		}
	}
	x.tombs = 0
	x.hdr.Store((hdr>>(hdrHalfShift+1)+1)<<(hdrHalfShift+1) | half<<hdrHalfShift | n)
	old.discard(0, oldN)
	return nil
}

// place puts key and loc in the first empty slot of a table of n buckets
// that no reader validates against (a reader that loaded a former hdr
// naming it fails its check of hdr).
func (x *index) place(t *offTable[bucket], n, hash, key, loc uint64) {
	for b := home(hash, n); ; b = next(b, n) {
		bk := t.at(b)
		for j := range bucketSlots {
			if loadKey(bk, j) == 0 {
				write(bk, j, key, loc)
				return
			}
		}
	}
}
