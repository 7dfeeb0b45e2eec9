package column_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/column"
)

// FuzzOpen opens files that are not (quite) columns: any bytes for a
// column file, a variable column's index and its data file, with the magic
// number, version and checksum of either header slot set on request so
// that the fuzzer reaches what lies behind a valid checksum. It is model
// free: an open either succeeds, and then every row reads back without a
// panic or fault and Close succeeds, or it is ErrCorrupt or ErrMismatch and
// leaves every file exactly as it was.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	fixed, vr := filepath.Join(dir, "f"), filepath.Join(dir, "v")
	fc, err := column.OpenFixed[int64](fixed, nil)
	if err != nil {
		f.Fatal(err)
	}
	vc, err := column.OpenVar(vr, nil)
	if err != nil {
		f.Fatal(err)
	}
	for i, r := range varRows {
		_ = fc.Append(int64(i))
		if r == nil {
			_ = vc.AppendNull()
		} else {
			_ = vc.AppendStr(*r)
		}
	}
	_ = fc.Sync()
	_ = vc.Sync()
	_ = fc.Append(-1)
	_ = vc.AppendStr("not synced")
	crash := crashCopy(f, fixed, vr, vr+column.DataSuffix)
	_ = fc.Close()
	_ = vc.Close()
	fb, ib, db := fileBytes(f, filepath.Join(crash, "f")), fileBytes(f, filepath.Join(crash, "v")), fileBytes(f, filepath.Join(crash, "v")+column.DataSuffix)
	f.Add(fb, []byte{}, uint8(0))
	f.Add(ib, db, uint8(0))
	f.Add(ib, db, uint8(3))
	f.Add(fb[:column.HeaderSize], db, uint8(1))
	f.Add(ib[:600], []byte("junk"), uint8(2))
	f.Add(make([]byte, column.HeaderSize+8), []byte{}, uint8(0))
	f.Add([]byte("not a column at all"), []byte{}, uint8(3))

	f.Fuzz(func(t *testing.T, head, data []byte, seal uint8) {
		for _, s := range []int{slot0, slot1} {
			if seal&(1<<(s/slot1)) != 0 && len(head) >= s+fieldCRC+4 {
				copy(head[s:], "\x4f\x48\x43\x4c\x01\x00") // magic, version 1
				reseal(head, s)
			}
		}
		dir := memDir(t)
		opens := map[string]func(path string) error{
			"fixed int64": func(p string) error {
				c, err := column.OpenFixed[int64](p, nil)
				if err == nil {
					for i := range c.Rows() {
						_ = c.Get(i)
					}
					_ = c.Values()
					err = c.Close()
					if err != nil {
						t.Fatalf("Close of an opened column: %v", err)
					}
				}
				return err
			},
			"var": func(p string) error {
				c, err := column.OpenVar(p, nil)
				if err == nil {
					readAll(t, c)
					if err := c.Close(); err != nil {
						t.Fatalf("Close of an opened column: %v", err)
					}
				}
				return err
			},
		}
		for name, open := range opens {
			path := filepath.Join(dir, name)
			writeBack(t, path, head)
			if len(data) > 0 {
				writeBack(t, path+column.DataSuffix, data)
			}
			before, beforeData := stateOf(t, path), stateOf(t, path+column.DataSuffix)
			err := open(path)
			if err == nil {
				continue
			}
			if !errors.Is(err, column.ErrCorrupt) && !errors.Is(err, column.ErrMismatch) {
				t.Fatalf("%s: %v, want ErrCorrupt or ErrMismatch", name, err)
			}
			if s := stateOf(t, path); !s.equal(before) {
				t.Fatalf("%s: a failed open changed the file from %v to %v", name, before, s)
			}
			if s := stateOf(t, path+column.DataSuffix); !s.equal(beforeData) {
				t.Fatalf("%s: a failed open changed the data file from %v to %v", name, beforeData, s)
			}
		}
	})
}

func fileBytes(f *testing.F, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
