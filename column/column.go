// Package column is column files on mapped memory: fixed-width columns of any
// fixed-size numeric type, and variable-width columns of strings or binary
// values, each a file (or two) that grows in place by appending rows, with
// durable Sync and a reopen that is safe after a crash at any moment.
//
// # Crash safety
//
// Every column has a header page (at the start of its file, or of a variable
// column's index file) holding two commit slots. A slot
// records a sequence number, the committed row count (and, for a variable
// column, the committed length of its data file) and a CRC-32C of itself.
// Sync first flushes the rows appended since the last commit (msync, waiting
// for the write), and only then writes the next slot (the older of the two)
// and flushes the header page. Reopening trusts the valid slot with the
// highest sequence number and drops every row after its count.
//
// So after a crash at any moment, kill -9 or power loss, a reopened column
// has every row appended before the last Sync that returned nil, and never a
// torn or garbage row: the rows a slot counts were durable before the slot
// was written, and a slot torn by power loss fails its checksum, leaving the
// other, older slot (each sits in its own 512-byte sector). Rows appended
// after the last Sync may or may not survive a crash; Close commits them.
package column

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/offheap/offheap/mapped"
)

// Errors returned by column, wrapped with context; test for them with
// errors.Is. Errors of the memory underneath (mapped.ErrClosed,
// vmem.ErrExhausted, a full disk's errno) come back wrapped as they are.
var (
	ErrCorrupt  = errors.New("column: file corrupt")                   // no valid header, or a header counting more than the file holds
	ErrMismatch = errors.New("column: file holds another column type") // reopened as another kind or element type
)

// HeaderSize is the size of the header page at the start of every column
// file (of a variable column's index file); rows follow it.
const HeaderSize = 4096

// Options tune a column; the zero value (or nil) is ready to use.
type Options struct {
	// Reserve is the most bytes each file of the column may hold; 0 means
	// mapped.DefaultReserve. It costs address space only.
	Reserve int
	// ExtendSize is the step the files grow by; 0 means mapped.DefaultExtendSize.
	ExtendSize int
}

func (o *Options) mapped(name string) *mapped.Options {
	m := &mapped.Options{Name: name}
	if o != nil {
		m.Reserve, m.ExtendSize = o.Reserve, o.ExtendSize
	}
	return m
}

// kinds of column, recorded in the header.
const (
	kindFixed = 1
	kindVar   = 2
)

// The header slot layout: two slots, at the starts of the first two 512-byte
// sectors of the header page.
const (
	slotSize  = 64
	slotOff1  = 512
	magic     = 0x4c43484f // "OHCL" in little-endian
	version   = 1
	offMagic  = 0  // uint32
	offVer    = 4  // uint16
	offKind   = 6  // uint8
	offSize   = 7  // uint8: element size (fixed) or 8 (var: an int64 offset per row)
	offSeq    = 8  // uint64
	offRows   = 16 // uint64
	offData   = 24 // uint64: committed data file length (var)
	offType   = 32 // uint8: reflect.Kind of the element (fixed)
	offCRC    = 60 // uint32: CRC-32C of bytes [0, 60)
	crcCover  = offCRC
	slotCount = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is one commit slot, decoded.
type header struct {
	kind, size, typ uint8
	seq             uint64
	rows            uint64
	data            uint64
}

// encode lays h out as a slot in b, checksum included.
func (h header) encode(b *[slotSize]byte) {
	le := binary.LittleEndian
	le.PutUint32(b[offMagic:], magic)
	le.PutUint16(b[offVer:], version)
	b[offKind], b[offSize], b[offType] = h.kind, h.size, h.typ
	le.PutUint64(b[offSeq:], h.seq)
	le.PutUint64(b[offRows:], h.rows)
	le.PutUint64(b[offData:], h.data)
	le.PutUint32(b[offCRC:], crc32.Checksum(b[:crcCover], castagnoli))
}

// decodeSlot returns the slot in b and whether it is valid; zero reports
// whether b is all zero bytes (a slot never written).
func decodeSlot(b []byte) (h header, valid, zero bool) {
	zero = true
	for _, c := range b {
		if c != 0 {
			zero = false
			break
		}
	}
	le := binary.LittleEndian
	if le.Uint32(b[offMagic:]) != magic || le.Uint16(b[offVer:]) != version ||
		le.Uint32(b[offCRC:]) != crc32.Checksum(b[:crcCover], castagnoli) {
		return h, false, zero
	}
	h = header{kind: b[offKind], size: b[offSize], typ: b[offType],
		seq: le.Uint64(b[offSeq:]), rows: le.Uint64(b[offRows:]), data: le.Uint64(b[offData:])}
	return h, true, false
}

// slotAt is where the slot for sequence number seq goes: they alternate.
func slotAt(seq uint64) int { return int(seq%slotCount) * slotOff1 }

// headerFile is the memory holding a column's header page and its commit state.
type headerFile struct {
	m      *mapped.Memory
	last   header // the last commit, as written in the header
	name   string
	closed bool
}

// usable returns mapped.ErrClosed, wrapped, once the column is closed.
func (h *headerFile) usable(op string) error {
	if h.closed {
		return fmt.Errorf("column: %s %q: %w", op, h.name, mapped.ErrClosed)
	}
	return nil
}

// openHeader maps the file at path and reads its last commit, creating the
// header of a new file as want (with seq 0, rows 0). A file whose header is
// not valid is ErrCorrupt, one of another kind or type ErrMismatch.
func openHeader(path string, want header, opts *Options) (*headerFile, error) {
	m, err := mapped.OpenFile(path, opts.mapped(path))
	if err != nil {
		return nil, fmt.Errorf("column: open %q: %w", path, err)
	}
	h := &headerFile{m: m, name: path}
	if err := h.load(want); err != nil {
		_ = m.Close()
		return nil, err
	}
	return h, nil
}

// load reads the newest valid slot, or initializes a new file.
func (h *headerFile) load(want header) error {
	if h.m.Len() < HeaderSize {
		if !allZero(h.m.Bytes(0, h.m.Len())) {
			return fmt.Errorf("column: open %q: %d bytes, shorter than a header: %w", h.name, h.m.Len(), ErrCorrupt)
		}
		return h.create(want)
	}
	s0, ok0, zero0 := decodeSlot(h.m.Bytes(0, slotSize))
	s1, ok1, zero1 := decodeSlot(h.m.Bytes(slotOff1, slotSize))
	switch {
	case ok0 && (!ok1 || s0.seq > s1.seq):
		h.last = s0
	case ok1:
		h.last = s1
	case zero0 || zero1: // the first commit never completed: nothing was committed
		return h.create(want)
	default:
		return fmt.Errorf("column: open %q: no valid header slot: %w", h.name, ErrCorrupt)
	}
	if h.last.kind != want.kind || h.last.size != want.size || h.last.typ != want.typ {
		return fmt.Errorf("column: open %q: kind %d size %d type %d, want kind %d size %d type %d: %w",
			h.name, h.last.kind, h.last.size, h.last.typ, want.kind, want.size, want.typ, ErrMismatch)
	}
	return nil
}

// create makes a new file's header page and commits an empty column to it.
func (h *headerFile) create(want header) error {
	if err := h.m.Jump(HeaderSize); err != nil {
		return fmt.Errorf("column: create %q: %w", h.name, err)
	}
	h.last = want
	if err := h.commit(0, 0); err != nil {
		return err
	}
	return syncDir(h.name)
}

// commit writes the next slot with rows and data and flushes the header page.
// The rows it counts must already be durable.
func (h *headerFile) commit(rows, data int) error {
	next := h.last
	next.seq++
	next.rows, next.data = uint64(rows), uint64(data)
	var slot [slotSize]byte
	next.encode(&slot)
	h.m.PutBytes(slotAt(next.seq), slot[:])
	if err := h.m.SyncRange(0, HeaderSize); err != nil {
		return fmt.Errorf("column: commit %q: %w", h.name, err)
	}
	h.last = next
	return nil
}

// close unmaps the file after a commit that returned err, and returns the
// errors of both.
func (h *headerFile) close(err error) error {
	if h.closed {
		return h.usable("close")
	}
	h.closed = true
	if cerr := h.m.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("column: close %q: %w", h.name, cerr))
	}
	return err
}

// syncDir flushes the directory holding path, so a new file's name is durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("column: sync directory of %q: %w", path, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("column: sync directory of %q: %w", path, err)
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// syncTail flushes the bytes of m written since from, waiting for the write.
func syncTail(m *mapped.Memory, from int, name string) error {
	if from >= m.Len() {
		return nil
	}
	if err := m.SyncRange(from, m.Len()-from); err != nil {
		return fmt.Errorf("column: sync %q: %w", name, err)
	}
	return nil
}

// RowError is the panic value of a read of a row that does not exist, the
// counterpart of Go's index-out-of-range panic.
type RowError struct {
	Row, Rows int
}

// Error describes the read.
func (e RowError) Error() string {
	return fmt.Sprintf("column: row %d out of range [0:%d]", e.Row, e.Rows)
}

// RuntimeError marks RowError as a runtime.Error, like an index out of range.
func (e RowError) RuntimeError() {}

func joinErr(a, b error) error { return errors.Join(a, b) }
