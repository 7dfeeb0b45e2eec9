package column_test

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/column"
)

// Tests of files damaged behind a valid header: the header slot's checksum
// holds, but what it counts, or the rows it covers, cannot be what the
// library wrote. Each must be ErrCorrupt at open, with both files as they
// were, and never a panic or a fault at a later read.

// The fields of a header slot, as column.go lays them out.
const (
	fieldSeq  = 8
	fieldRows = 16
	fieldData = 24
	fieldCRC  = 60
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// reseal recomputes the checksum of the slot at off of b.
func reseal(b []byte, off int) {
	binary.LittleEndian.PutUint32(b[off+fieldCRC:], crc32.Checksum(b[off:off+fieldCRC], castagnoli))
}

// newestSlot returns the offset of the slot with the higher sequence number.
func newestSlot(b []byte) int {
	if binary.LittleEndian.Uint64(b[slot0+fieldSeq:]) > binary.LittleEndian.Uint64(b[slot1+fieldSeq:]) {
		return slot0
	}
	return slot1
}

// setField sets a uint64 field of the newest slot and reseals it.
func setField(field int, v uint64) func(index, data []byte) {
	return func(index, _ []byte) {
		s := newestSlot(index)
		binary.LittleEndian.PutUint64(index[s+field:], v)
		reseal(index, s)
	}
}

// varRows are the rows of the column TestDamagedVarIsCorrupt damages: a
// value, an empty one, a null and a long one, at data offsets 0, 9, 13, 17,
// ending at 35.
var varRows = []*string{ptr("value"), ptr(""), nil, ptr("a longer value")}

func ptr(s string) *string { return &s }

// entry returns the offset of row i's index entry.
func entry(i int) int { return column.HeaderSize + 8*i }

func TestDamagedVarIsCorrupt(t *testing.T) {
	le := binary.LittleEndian
	for name, damage := range map[string]func(index, data []byte){
		"row outside the data file":  func(index, _ []byte) { le.PutUint64(index[entry(1):], 1<<40) },
		"negative row offset":        func(index, _ []byte) { le.PutUint64(index[entry(2):], math.MaxUint64) },
		"rows out of order":          func(index, _ []byte) { le.PutUint64(index[entry(1):], 13); le.PutUint64(index[entry(2):], 9) },
		"first row not at 0":         func(index, _ []byte) { le.PutUint64(index[entry(0):], 4) },
		"overlapping rows":           func(index, _ []byte) { le.PutUint64(index[entry(3):], 10) },
		"value past the data":        func(_, data []byte) { le.PutUint32(data[17:], 1000) },
		"value of 2 GiB":             func(_, data []byte) { le.PutUint32(data[0:], math.MaxInt32) },
		"length below null":          func(_, data []byte) { le.PutUint32(data[13:], uint32(0xfffffff0)) },
		"data length past the file":  setField(fieldData, 1<<20),
		"data length of 2^64-1":      setField(fieldData, math.MaxUint64),
		"data length short of rows":  setField(fieldData, 20),
		"data length past last row":  setField(fieldData, 40),
		"rows past the index":        setField(fieldRows, 1000),
		"rows of 2^63":               setField(fieldRows, 1<<63),
		"rows of 2^64-1":             setField(fieldRows, math.MaxUint64),
		"rows past data, index fits": setField(fieldRows, 5),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "v")
			c := openVar(t, path, nil)
			for _, r := range varRows {
				var err error
				if r == nil {
					err = c.AppendNull()
				} else {
					err = c.AppendStr(*r)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Sync(); err != nil {
				t.Fatal(err)
			}
			// An uncommitted tail, so both files run past what the header counts.
			_ = c.AppendStr("not synced")
			_ = c.AppendStr("nor this")
			crash := crashCopy(t, path, path+column.DataSuffix)
			_ = c.Close()
			path = filepath.Join(crash, "v")
			index, data := readFile(t, path), readFile(t, path+column.DataSuffix)
			damage(index, data)
			writeBack(t, path, index)
			writeBack(t, path+column.DataSuffix, data)
			before, beforeData := stateOf(t, path), stateOf(t, path+column.DataSuffix)

			c, err := column.OpenVar(path, nil)
			if err == nil {
				readAll(t, c)
				_ = c.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, column.ErrCorrupt) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
			if s := stateOf(t, path); !s.equal(before) {
				t.Errorf("the index file changed from %v to %v", before, s)
			}
			if s := stateOf(t, path+column.DataSuffix); !s.equal(beforeData) {
				t.Errorf("the data file changed from %v to %v", beforeData, s)
			}
		})
	}
}

// readAll reads every row of c, as a program would after opening it.
func readAll(t *testing.T, c *column.Var) {
	t.Helper()
	for i := range c.Rows() {
		_, _ = c.Str(i)
		_ = c.Bin(i)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBack(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestMisplacedCommitIsCorrupt: a checksummed header slot that no commit
// can have written where it lies (a sequence number of 0, one so high the
// next would wrap, one that belongs in the other slot) is ErrCorrupt, with
// the file unchanged, rather than trusted or skipped: trusted, the next
// commit goes over the newest slot or sorts before the older one.
func TestMisplacedCommitIsCorrupt(t *testing.T) {
	for name, damage := range map[string]func(b []byte){
		"newest in the other's place": func(b []byte) { setSeq(b, slot1, binary.LittleEndian.Uint64(b[slot1+fieldSeq:])+1) },
		"zero sequence":               func(b []byte) { setSeq(b, slot0, 0) },
		"sequence of 2^62+1":          func(b []byte) { setSeq(b, slot1, 1<<62+1) },
		"sequence of 2^64-1":          func(b []byte) { setSeq(b, slot1, math.MaxUint64) },
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			c := openFixed[int64](t, path, nil)
			for i := range 3 {
				_ = c.Append(int64(i))
				if err := c.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			_ = c.Close()
			b := readFile(t, path)
			damage(b)
			writeBack(t, path, b)
			before := stateOf(t, path)
			c, err := column.OpenFixed[int64](path, nil)
			closeIf(c, err)
			if !errors.Is(err, column.ErrCorrupt) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
			if s := stateOf(t, path); !s.equal(before) {
				t.Errorf("the file changed from %v to %v", before, s)
			}
		})
	}
}

// setSeq sets the sequence number of the slot at off and reseals it.
func setSeq(b []byte, off int, seq uint64) {
	binary.LittleEndian.PutUint64(b[off+fieldSeq:], seq)
	reseal(b, off)
}

// TestDamagedFixedIsCorrupt: a fixed column's header that counts more rows
// than its file holds, however it overflows, is ErrCorrupt with the file
// unchanged.
func TestDamagedFixedIsCorrupt(t *testing.T) {
	for name, rows := range map[string]uint64{
		"one row past the file": 4,
		"rows of 2^61":          1 << 61, // times 8 bytes wraps to 0
		"rows of 2^63":          1 << 63,
		"rows of 2^64-1":        math.MaxUint64,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			c := openFixed[int64](t, path, nil)
			for i := range 3 {
				_ = c.Append(int64(i))
			}
			_ = c.Close()
			b := readFile(t, path)
			setField(fieldRows, rows)(b, nil)
			writeBack(t, path, b)
			before := stateOf(t, path)
			c, err := column.OpenFixed[int64](path, nil)
			if err == nil {
				_ = c.Values()
				_ = c.Close()
			}
			if !errors.Is(err, column.ErrCorrupt) {
				t.Fatalf("%v, want ErrCorrupt", err)
			}
			if s := stateOf(t, path); !s.equal(before) {
				t.Errorf("the file changed from %v to %v", before, s)
			}
		})
	}
}
