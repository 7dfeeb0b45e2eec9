package column_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	"github.com/offheap/offheap/column"
	"github.com/offheap/offheap/internal/fuzzops"
	"github.com/offheap/offheap/vmem"
)

// varVal is one row of the variable column's model; null when !ok.
type varVal struct {
	s  string
	ok bool
}

// fuzzOptions give FuzzColumn's columns a small reservation, so appends fail
// on the way.
var fuzzOptions = &column.Options{Reserve: 3 * 4096, ExtendSize: 4096}

// columnModel is FuzzColumn's reference for a fixed and a variable column:
// a slice of rows each, and how many rows of each were synced. Each method
// does one operation to the columns and the model and checks the columns'
// answer; check compares them after every operation.
type columnModel struct {
	t                *testing.T
	ops              *fuzzops.Reader // for the values of a run of appends
	fp, vp           string
	fc               *column.Fixed[uint32]
	vc               *column.Var
	fixed            []uint32
	vars             []varVal
	fSynced, vSynced int
}

func newColumnModel(t *testing.T, ops *fuzzops.Reader) *columnModel {
	dir := memDir(t)
	m := &columnModel{t: t, ops: ops, fp: filepath.Join(dir, "f"), vp: filepath.Join(dir, "v")}
	m.fc, m.vc = openFixed[uint32](t, m.fp, fuzzOptions), openVar(t, m.vp, fuzzOptions)
	return m
}

func (m *columnModel) close() { _ = m.fc.Close(); _ = m.vc.Close() }

// appendFixed appends up to n rows to the fixed column, stopping at the
// first that does not fit the reservation (which must change nothing).
func (m *columnModel) appendFixed(n int) {
	for range n {
		v := uint32(m.ops.Byte()) * 0x01010101
		err := m.fc.Append(v)
		if errors.Is(err, vmem.ErrExhausted) {
			break
		}
		if err != nil {
			m.t.Fatal(err)
		}
		m.fixed = append(m.fixed, v)
	}
}

// appendVar appends a string (kind 0), binary value (1) or null (2) of n
// letters; one that does not fit must change nothing.
func (m *columnModel) appendVar(kind, n int) {
	s := string(bytes.Repeat([]byte{byte('A' + n%26)}, n))
	var err error
	switch kind {
	case 0:
		err = m.vc.AppendStr(s)
	case 1:
		err = m.vc.AppendBin([]byte(s))
	default:
		err = m.vc.AppendNull()
		s = ""
	}
	if errors.Is(err, vmem.ErrExhausted) {
		return
	}
	if err != nil {
		m.t.Fatal(err)
	}
	m.vars = append(m.vars, varVal{s, kind != 2})
}

// get reads fixed row i, which panics with a RowError out of range.
func (m *columnModel) get(i int) {
	defer func() {
		_, isRowErr := recover().(column.RowError)
		if inRange := i >= 0 && i < len(m.fixed); isRowErr == inRange {
			m.t.Fatalf("Get(%d) of %d rows: RowError %v", i, len(m.fixed), isRowErr)
		}
	}()
	if got := m.fc.Get(i); got != m.fixed[i] {
		m.t.Fatalf("Get(%d) = %d want %d", i, got, m.fixed[i])
	}
}

// sync makes every row of both columns durable.
func (m *columnModel) sync() {
	if err := m.fc.Sync(); err != nil {
		m.t.Fatal(err)
	}
	if err := m.vc.Sync(); err != nil {
		m.t.Fatal(err)
	}
	m.fSynced, m.vSynced = len(m.fixed), len(m.vars)
}

// reopen closes (which commits) and reopens both: everything survives.
func (m *columnModel) reopen() {
	if err := m.fc.Close(); err != nil {
		m.t.Fatal(err)
	}
	if err := m.vc.Close(); err != nil {
		m.t.Fatal(err)
	}
	m.fc, m.vc = openFixed[uint32](m.t, m.fp, fuzzOptions), openVar(m.t, m.vp, fuzzOptions)
	m.fSynced, m.vSynced = len(m.fixed), len(m.vars)
}

// crash opens a copy of the files as they are, as after a crash: exactly
// the synced rows survive.
func (m *columnModel) crash() {
	dir := crashCopy(m.t, m.fp, m.vp, m.vp+column.DataSuffix)
	cf := openFixed[uint32](m.t, filepath.Join(dir, "f"), fuzzOptions)
	cv := openVar(m.t, filepath.Join(dir, "v"), fuzzOptions)
	checkColumns(m.t, "after a crash", cf, cv, m.fixed[:m.fSynced], m.vars[:m.vSynced])
	_ = cf.Close()
	_ = cv.Close()
}

// fill appends fixed rows until the reservation is full.
func (m *columnModel) fill() {
	for m.fc.Append(1) == nil {
		m.fixed = append(m.fixed, 1)
	}
}

// check compares the live columns with the model.
func (m *columnModel) check() { checkColumns(m.t, "live", m.fc, m.vc, m.fixed, m.vars) }

// checkColumns compares two columns with the rows they should hold.
func checkColumns(t *testing.T, what string, fc *column.Fixed[uint32], vc *column.Var, fixed []uint32, vars []varVal) {
	t.Helper()
	if fc.Rows() != len(fixed) || !slices.Equal(fc.Values(), fixed) {
		t.Fatalf("%s: fixed column of %d rows differs from model of %d", what, fc.Rows(), len(fixed))
	}
	if vc.Rows() != len(vars) {
		t.Fatalf("%s: var column of %d rows, model %d", what, vc.Rows(), len(vars))
	}
	for i, want := range vars {
		if s, ok := vc.Str(i); s != want.s || ok != want.ok {
			t.Fatalf("%s: var row %d is %q %v, want %q %v", what, i, s, ok, want.s, want.ok)
		}
	}
}

// maxColumnOps bounds the operations of one FuzzColumn input.
const maxColumnOps = 200

// FuzzColumn runs random operation sequences on a fixed and a variable
// column and checks them against columnModel: appends (some failing on a
// small reservation, which must change nothing), reads, Sync, Close and
// reopen (everything survives), and a simulated crash (a copy of the files
// as they are, reopened: exactly the synced rows survive).
func FuzzColumn(f *testing.F) {
	f.Add([]byte{0, 1, 2, 1, 3, 0, 5, 4, 0, 1, 6, 2})
	f.Add([]byte{1, 7, 1, 0, 5, 1, 9, 3, 0, 0, 0, 6, 4, 2, 2})
	f.Add([]byte{0, 9, 0, 8, 5, 0, 1, 1, 3, 6, 0, 2, 1, 5, 4, 6})
	f.Add([]byte{7, 200, 7, 200, 7, 200, 1, 30, 5, 6, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		ops := fuzzops.New(data)
		m := newColumnModel(t, ops)
		defer m.close()
		// At most maxColumnOps operations an input: reopens and crash copies
		// open and copy files, and the fuzzer's long inputs took minutes
		// each, stalling CI's fixed count of executions.
		for n := 0; n < maxColumnOps && ops.More(); n++ {
			switch ops.Intn(8) {
			case 0, 1:
				m.appendFixed(ops.Intn(64))
			case 2:
				kind := ops.Intn(3)
				m.appendVar(kind, ops.Intn(50))
			case 3:
				m.get(ops.Byte() - 8)
			case 4:
				m.sync()
			case 5:
				m.reopen()
			case 6:
				m.crash()
			case 7:
				m.fill()
			}
			m.check()
		}
	})
}
