package column_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/column"
	"github.com/offheap/offheap/vmem"
)

// varVal is one row of the variable column's model; null when !ok.
type varVal struct {
	s  string
	ok bool
}

// FuzzColumn runs random operation sequences on a fixed and a variable
// column and checks them against slice models: appends (some failing on a
// small reservation, which must change nothing), reads, Sync, Close and
// reopen (everything survives), and a simulated crash (a copy of the files
// as they are, reopened: exactly the synced rows survive).
func FuzzColumn(f *testing.F) {
	f.Add([]byte{0, 1, 2, 1, 3, 0, 5, 4, 0, 1, 6, 2})
	f.Add([]byte{1, 7, 1, 0, 5, 1, 9, 3, 0, 0, 0, 6, 4, 2, 2})
	f.Add([]byte{0, 9, 0, 8, 5, 0, 1, 1, 3, 6, 0, 2, 1, 5, 4, 6})
	f.Add([]byte{7, 200, 7, 200, 7, 200, 1, 30, 5, 6, 4})
	o := &column.Options{Reserve: 3 * 4096, ExtendSize: 4096}
	f.Fuzz(func(t *testing.T, ops []byte) {
		dir := t.TempDir()
		fp, vp := filepath.Join(dir, "f"), filepath.Join(dir, "v")
		fc := openFixed[uint32](t, fp, o)
		vc := openVar(t, vp, o)
		defer func() { _ = fc.Close(); _ = vc.Close() }()
		var fm []uint32
		var vm []varVal
		fSynced, vSynced := 0, 0
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			v := int(ops[0])
			ops = ops[1:]
			return v
		}
		check := func(what string, fc *column.Fixed[uint32], vc *column.Var, fm []uint32, vm []varVal) {
			t.Helper()
			if fc.Rows() != len(fm) || !equalU32(fc.Values(), fm) {
				t.Fatalf("%s: fixed column of %d rows differs from model of %d", what, fc.Rows(), len(fm))
			}
			if vc.Rows() != len(vm) {
				t.Fatalf("%s: var column of %d rows, model %d", what, vc.Rows(), len(vm))
			}
			for i, want := range vm {
				if s, ok := vc.Str(i); s != want.s || ok != want.ok {
					t.Fatalf("%s: var row %d is %q %v, want %q %v", what, i, s, ok, want.s, want.ok)
				}
			}
		}
		for len(ops) > 0 {
			switch next() % 8 {
			case 0, 1: // append n fixed rows
				for range next() % 64 {
					v := uint32(next()) * 0x01010101
					err := fc.Append(v)
					if errors.Is(err, vmem.ErrExhausted) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					fm = append(fm, v)
				}
			case 2: // append a string, binary value or null
				kind, n := next()%3, next()%50
				s := string(bytes.Repeat([]byte{byte('A' + n%26)}, n))
				var err error
				switch kind {
				case 0:
					err = vc.AppendStr(s)
				case 1:
					err = vc.AppendBin([]byte(s))
				default:
					err = vc.AppendNull()
				}
				if errors.Is(err, vmem.ErrExhausted) {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				vm = append(vm, varVal{s, kind != 2})
				if kind == 2 {
					vm[len(vm)-1].s = ""
				}
			case 3: // read a row, maybe out of range
				i := next() - 8
				func() {
					defer func() {
						_, isRowErr := recover().(column.RowError)
						if inRange := i >= 0 && i < len(fm); isRowErr == inRange {
							t.Fatalf("Get(%d) of %d rows: RowError %v", i, len(fm), isRowErr)
						}
					}()
					if got := fc.Get(i); got != fm[i] {
						t.Fatalf("Get(%d) = %d want %d", i, got, fm[i])
					}
				}()
			case 4: // sync
				if err := fc.Sync(); err != nil {
					t.Fatal(err)
				}
				if err := vc.Sync(); err != nil {
					t.Fatal(err)
				}
				fSynced, vSynced = len(fm), len(vm)
			case 5: // close and reopen: everything survives
				if err := fc.Close(); err != nil {
					t.Fatal(err)
				}
				if err := vc.Close(); err != nil {
					t.Fatal(err)
				}
				fc, vc = openFixed[uint32](t, fp, o), openVar(t, vp, o)
				fSynced, vSynced = len(fm), len(vm)
			case 6: // crash: a copy of the files as they are keeps the synced rows
				crash := crashCopy(t, fp, vp, vp+column.DataSuffix)
				cf := openFixed[uint32](t, filepath.Join(crash, "f"), o)
				cv := openVar(t, filepath.Join(crash, "v"), o)
				check("after a crash", cf, cv, fm[:fSynced], vm[:vSynced])
				_ = cf.Close()
				_ = cv.Close()
			case 7: // fill up
				for fc.Append(1) == nil {
					fm = append(fm, 1)
				}
			}
			check("live", fc, vc, fm, vm)
		}
	})
}

func equalU32(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
