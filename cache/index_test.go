package cache

import (
	"bytes"
	"testing"

	"github.com/offheap/offheap/internal/fuzzops"
)

// indexModel is the reference for FuzzIndex: what each id in the index
// should be found under, and at which location.
type indexModel struct {
	t    *testing.T
	st   *store
	locs map[uint32]uint64 // id -> location
	ids  []uint32          // the ids in locs, in insertion order (for picking)
	next uint32
}

// hashFor makes a hash whose home bucket the fuzzer steers towards the
// ends of the table (wrap-around) or a few crowded buckets, with a tag of
// its own or one shared by other keys.
func hashFor(ops *fuzzops.Reader) uint64 {
	var low uint64
	switch ops.Intn(4) {
	case 0:
		low = 1<<32 - 1 - uint64(ops.Byte()) // the last bucket
	case 1:
		low = uint64(ops.Byte()) // the first
	case 2:
		low = uint64(ops.Intn(4)) << 30 // four crowded buckets
	default:
		low = uint64(ops.Uint16())<<16 | uint64(ops.Uint16())
	}
	return uint64(1+ops.Intn(3))<<32 | low
}

func (m *indexModel) pick(ops *fuzzops.Reader) (uint32, bool) {
	if len(m.ids) == 0 {
		return 0, false
	}
	return m.ids[ops.Intn(len(m.ids))], true
}

func (m *indexModel) drop(id uint32) {
	delete(m.locs, id)
	for i, x := range m.ids {
		if x == id {
			m.ids = append(m.ids[:i], m.ids[i+1:]...)
			return
		}
	}
}

// newID gives a fresh id its hash in the entry table, as Set would.
func (m *indexModel) newID(hash uint64) uint32 {
	id := m.next
	m.next++
	if err := m.st.ents.grow(uint64(id) + 1); err != nil {
		m.t.Fatal(err)
	}
	m.st.entry(id).hash = hash
	return id
}

// check compares the index with the model: every id is found by slotFor
// and by a reader's probe, with its location; the index's counts of live
// slots and tombstones are right; no bucket is left odd.
func (m *indexModel) check() {
	x := &m.st.idx
	t, n := x.table(x.hdr.Load())
	live, tombs := uint64(0), uint64(0)
	for b := range n {
		bk := t.at(b)
		if loadSeq(bk)&1 != 0 {
			m.t.Fatalf("bucket %d left odd", b)
		}
		for j := range bucketSlots {
			switch k := loadKey(bk, j); {
			case k == tombstone:
				tombs++
			case uint32(k) != 0:
				live++
				if _, ok := m.locs[idOf(k)]; !ok {
					m.t.Fatalf("the index holds id %d, which it should not", idOf(k))
				}
			}
		}
	}
	if live != uint64(len(m.locs)) || live != x.live || tombs != x.tombs {
		m.t.Fatalf("%d live slots and %d tombstones; the index counts %d and %d; the model holds %d",
			live, tombs, x.live, x.tombs, len(m.locs))
	}
	if used := live + tombs; used*4 > n*bucketSlots*3 {
		m.t.Fatalf("%d of %d slots in use", used, n*bucketSlots)
	}
	for id, loc := range m.locs {
		h := m.st.entry(id).hash
		bk, _, j := x.slotFor(h, id)
		if got := loadLoc(bk, j); got != loc {
			m.t.Fatalf("id %d located at %#x, want %#x", id, got, loc)
		}
		if !m.probe(h, id) {
			m.t.Fatalf("a reader's probe for id %d ends before its slot", id)
		}
	}
}

// probe looks for id (hash h) as Get does: from h's home, slot by slot,
// until an empty slot.
func (m *indexModel) probe(h uint64, id uint32) bool {
	t, n := m.st.idx.table(m.st.idx.hdr.Load())
	for b, left := home(h, n), n; left > 0; b, left = next(b, n), left-1 {
		bk := t.at(b)
		for j := range bucketSlots {
			k := loadKey(bk, j)
			if k == 0 {
				return false
			}
			if k == keyOf(h, id) {
				return true
			}
		}
	}
	return false
}

// FuzzIndex applies random inserts, removes, replaces, relocations and
// rehashes to an index and checks it against a map after each.
func FuzzIndex(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 0, 0, 2, 1, 1, 0, 3, 0, 2, 1, 4})
	f.Add(bytes.Repeat([]byte{0, 0, 5, 0, 1, 9, 0, 0, 7}, 60))
	f.Add(append(bytes.Repeat([]byte{0, 2, 3}, 150), bytes.Repeat([]byte{1, 0}, 150)...))
	f.Add(bytes.Repeat([]byte{0, 1, 0, 0, 3, 5, 1, 1, 2, 0, 4, 2}, 40))
	f.Add(bytes.Repeat([]byte{0, 3, 7, 7, 7, 7, 2, 1, 9, 1, 3}, 50))
	f.Fuzz(func(t *testing.T, data []byte) {
		st := &store{}
		const maxEntries = 1 << 10
		if err := st.ents.reserve(maxEntries, "fuzz entries"); err != nil {
			t.Fatal(err)
		}
		if err := st.idx.init(maxEntries, "fuzz index"); err != nil {
			t.Fatal(err)
		}
		defer st.close()
		m := &indexModel{t: t, st: st, locs: map[uint32]uint64{}}
		ops := fuzzops.New(data)
		for ops.More() {
			switch ops.Intn(5) {
			case 0: // insert
				if m.next == maxEntries || len(m.locs) == maxEntries-1 {
					continue
				}
				h := hashFor(ops)
				id := m.newID(h)
				loc := uint64(ops.Uint16())
				if err := st.idx.insert(st, h, id, loc); err != nil {
					t.Fatal(err)
				}
				m.locs[id] = loc
				m.ids = append(m.ids, id)
			case 1: // remove
				if id, ok := m.pick(ops); ok {
					st.idx.remove(st.entry(id).hash, id)
					m.drop(id)
				}
			case 2: // replace, as a Set of the same key does
				id, ok := m.pick(ops)
				if !ok || m.next == maxEntries {
					continue
				}
				h := st.entry(id).hash
				nid, loc := m.newID(h), uint64(ops.Uint16())
				st.idx.replace(h, id, nid, loc)
				m.drop(id)
				m.locs[nid] = loc
				m.ids = append(m.ids, nid)
			case 3: // relocate, as detach and compaction do
				if id, ok := m.pick(ops); ok {
					loc := uint64(ops.Uint16())
					st.idx.relocate(st.entry(id).hash, id, loc)
					m.locs[id] = loc
				}
			case 4: // rehash to the entries' size, as shrinking does
				if err := st.idx.rehash(st, st.idx.live); err != nil {
					t.Fatal(err)
				}
			}
			m.check()
		}
	})
}

// TestLocation checks that a location holds what it packs, and that what
// does not fit gets none.
func TestLocation(t *testing.T) {
	for _, c := range []struct{ off, kl, vl uint64 }{
		{0, 1, 0}, {8, 16, 100}, {1<<locOffBits - 1, 1<<locKeyBits - 1, 1<<locValBits - 1},
	} {
		loc := locOf(c.off, c.kl, c.vl)
		if off, kl, vl := unloc(loc); loc == 0 || off != c.off || kl != c.kl || vl != c.vl {
			t.Fatalf("locOf(%d, %d, %d) = %#x, which unpacks to %d, %d, %d", c.off, c.kl, c.vl, loc, off, kl, vl)
		}
	}
	for _, c := range []struct{ off, kl, vl uint64 }{
		{0, 1 << locKeyBits, 0}, {0, 1, 1 << locValBits}, {1 << locOffBits, 1, 1},
	} {
		if loc := locOf(c.off, c.kl, c.vl); loc != 0 {
			t.Fatalf("locOf(%d, %d, %d) = %#x, want none", c.off, c.kl, c.vl, loc)
		}
	}
}
