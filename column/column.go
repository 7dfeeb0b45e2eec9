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
//
// # Files that are not columns
//
// A file without a valid slot is taken for a column whose create never
// finished only when every byte of it outside the first commit's slot is
// zero; any other such file is ErrCorrupt and left exactly as it was. So is a
// variable column's data file when its index file is missing, empty or zeroed.
// A header whose checksum holds but whose content no commit can have written
// (a sequence number out of place, more rows or data than the files hold) is
// ErrCorrupt too, and so is a variable column whose committed rows do not lie
// end to end in its data file (OpenVar reads each row's offset and length
// once to know): a read of a row that was opened never panics or faults. An
// open that fails on such files (ErrCorrupt, ErrMismatch) creates none.
//
// # One writer
//
// A column file has one writer at a time: opening it while another open
// column (in this process or another) has it is vmem.ErrInUse (see
// mapped.OpenFile).
package column

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/offheap/offheap/internal/errs"
	"github.com/offheap/offheap/mapped"
)

// Errors returned by column, wrapped with context; test for them with
// errors.Is. Errors of the memory underneath (mapped.ErrClosed,
// vmem.ErrExhausted, vmem.ErrInUse, a full disk's errno) come back wrapped
// as they are.
var (
	ErrCorrupt  = errors.New("file is damaged")                // no valid header, or a header counting more than the file holds
	ErrMismatch = errors.New("file holds another column type") // reopened as another kind or element type
)

// fail wraps err, with a detail when not "", in an error about op on the
// file at path.
func fail(op, path, detail string, err error) error {
	return errs.New(errs.Head("column", "", op, path, ""), detail, err)
}

// HeaderSize is the size of the header page at the start of every column
// file (of a variable column's index file); rows follow it.
const HeaderSize = 4096

// Options tune a column; the zero value (or nil) is ready to use.
type Options struct {
	// Reserve is the most bytes each file of the column may hold; 0 means
	// mapped.DefaultReserve. It costs address space only, but a process has
	// 128 TiB of it: about 2,000 files open at once at the default.
	Reserve int
	// ExtendSize is the step the files grow by; 0 means mapped.DefaultExtendSize.
	ExtendSize int
}

func (o *Options) mapped() *mapped.Options {
	m := &mapped.Options{}
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
	firstSlot = slotOff1 // where the first commit (seq 1) goes: slotAt(1)
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

// decodeSlot returns the slot in b and whether it is valid.
func decodeSlot(b []byte) (h header, valid bool) {
	le := binary.LittleEndian
	if le.Uint32(b[offMagic:]) != magic || le.Uint16(b[offVer:]) != version ||
		le.Uint32(b[offCRC:]) != crc32.Checksum(b[:crcCover], castagnoli) {
		return h, false
	}
	h = header{kind: b[offKind], size: b[offSize], typ: b[offType],
		seq: le.Uint64(b[offSeq:]), rows: le.Uint64(b[offRows:]), data: le.Uint64(b[offData:])}
	return h, true
}

// slotAt is where the slot for sequence number seq goes: they alternate.
func slotAt(seq uint64) int { return int(seq%slotCount) * slotOff1 }

// maxSeq bounds the sequence numbers of a file the library wrote: no count
// of commits comes near it, and below it the next one never wraps.
const maxSeq = 1 << 62

// placed reports whether h, a valid slot found at off, is one a commit can
// have written there: its sequence number is in [1, maxSeq) and belongs at
// off. A checksummed slot that is not is damage no crash makes, and the
// file is ErrCorrupt rather than read from the other slot: the next commit
// would overwrite the newer one in place, or sort before an older one.
func (h header) placed(off int) bool { return h.seq >= 1 && h.seq < maxSeq && slotAt(h.seq) == off }

// headerFile is the memory holding a column's header page and its commit state.
type headerFile struct {
	m      *mapped.Memory
	last   header // the last commit, as written in the header
	name   string
	fresh  bool // no commit yet: create must write the header
	isNew  bool // this open created the file (so a failed open removes it)
	closed bool
}

// usable returns mapped.ErrClosed, wrapped, once the column is closed.
func (h *headerFile) usable(op string) error {
	if h.closed {
		return fail(op, h.name, "", mapped.ErrClosed)
	}
	return nil
}

// openHeader maps the file at path, holding its writer lock, and reads its
// last commit. A file with no commit yet (new, or a create that never
// finished) comes back fresh with last set to want and nothing written: call
// create. A file whose header is not valid is ErrCorrupt, one of another
// kind or type ErrMismatch, and either is left as it was.
func openHeader(path string, want header, opts *Options) (*headerFile, error) {
	isNew := !exists(path)
	m, err := mapped.OpenFile(path, opts.mapped())
	if err != nil {
		return nil, fail("open", path, "", err)
	}
	h := &headerFile{m: m, name: path, isNew: isNew}
	if err := h.load(want); err != nil {
		_ = m.Close()
		return nil, fail("open", path, "", err)
	}
	return h, nil
}

// exists reports whether there is a file at path (or may be: an error other
// than "does not exist" counts as yes, so it is never removed).
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// load reads the newest valid slot, or marks a file with no commit fresh.
func (h *headerFile) load(want header) error {
	var s0, s1 header
	var ok0, ok1 bool
	n := h.m.Len()
	if n >= HeaderSize {
		s0, ok0 = decodeSlot(h.m.Bytes(0, slotSize))
		s1, ok1 = decodeSlot(h.m.Bytes(slotOff1, slotSize))
	}
	if ok0 && !s0.placed(0) || ok1 && !s1.placed(slotOff1) {
		return fmt.Errorf("commits %d and %d out of place: %w", s0.seq, s1.seq, ErrCorrupt)
	}
	switch {
	case ok0 && (!ok1 || s0.seq > s1.seq):
		h.last = s0
	case ok1:
		h.last = s1
	case unfinished(h.m.Bytes(0, n)): // the first commit never completed: nothing was committed
		h.last, h.fresh = want, true
		return nil
	case n < HeaderSize:
		return fmt.Errorf("%d bytes, shorter than a header: %w", n, ErrCorrupt)
	default:
		return fmt.Errorf("no valid header slot: %w", ErrCorrupt)
	}
	if h.last.kind != want.kind || h.last.size != want.size || h.last.typ != want.typ {
		return fmt.Errorf("kind %d size %d type %d, want kind %d size %d type %d: %w",
			h.last.kind, h.last.size, h.last.typ, want.kind, want.size, want.typ, ErrMismatch)
	}
	return nil
}

// unfinished reports whether b, a file without a valid slot, can be a create
// that never finished: one whose every byte outside the first commit's slot
// is zero (a create writes nothing else before that commit).
func unfinished(b []byte) bool {
	if len(b) <= firstSlot {
		return allZero(b)
	}
	return allZero(b[:firstSlot]) && allZero(b[min(firstSlot+slotSize, len(b)):])
}

// create makes a fresh file's header page and commits an empty column to it.
func (h *headerFile) create() error {
	if err := h.m.Jump(HeaderSize); err != nil {
		return fail("create", h.name, "", err)
	}
	if err := h.commit(0, 0); err != nil {
		return err
	}
	h.fresh = false
	return syncDir(h.name)
}

// discard closes h after a failed open, first removing its file if this open
// created it and committed nothing to it.
func (h *headerFile) discard() {
	if h.isNew && h.fresh {
		_ = os.Remove(h.name)
	}
	_ = h.m.Close()
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
		return fail("commit", h.name, "", err)
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
		err = errors.Join(err, fail("close", h.name, "", cerr))
	}
	return err
}

// syncDir flushes the directory holding path, so a new file's name is durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fail("sync directory of", path, "", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("sync directory of", path, "", err)
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
		return fail("sync", name, "", err)
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
