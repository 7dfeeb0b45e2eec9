// Package mapped is typed memory in one contiguous range of address space that
// grows in place, anonymous or backed by a file: QuestDB's contiguous column
// memory, on offheap's vmem regions whose base address never moves.
//
// A Memory is written by appending (AppendInt64, AppendStr, ...) or by putting
// at any byte offset of what was written (PutInt64, ...), and read at any byte
// offset (Int64, Str, Bytes, ...), unaligned offsets included. Strings and
// binary values are an int32 length (-1 for null, so null and empty differ)
// followed by the bytes. Reads of strings, binary values and byte ranges are
// zero-copy views that stay valid until Close, across any growth.
package mapped

import (
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/errs"
	"github.com/offheap/offheap/vmem"
)

// Errors returned by mapped, wrapped with context; test for them with
// errors.Is. A failed growth or open wraps the vmem error that caused it
// (vmem.ErrExhausted when the reservation is full, vmem.ErrInUse when
// another writer has the file open, an errno such as ENOSPC when the disk is
// full).
var (
	ErrClosed   = errors.New("memory closed")           // use after Close
	ErrReadOnly = errors.New("memory is read-only")     // a write to a read-only file mapping
	ErrOffset   = errors.New("offset out of range")     // a negative Jump or Skip target
	ErrOptions  = errors.New("invalid options")         // a negative size, a read-only anonymous memory
	ErrTooLong  = errors.New("value longer than 2 GiB") // a string or binary value whose length does not fit an int32
)

// Defaults for the zero Options.
const (
	DefaultReserve    = 64 << 30 // address space reserved per Memory: the most it can hold (a process's 128 TiB hold about 2,000 such)
	DefaultExtendSize = 1 << 20  // growth step of a Memory
)

// Options tune a Memory; the zero value (or nil) is ready to use.
type Options struct {
	// Name labels errors and anonymous mappings in /proc/PID/maps.
	Name string
	// Reserve is the most bytes the memory may ever hold, exactly: a
	// Memory reserves that much address space up front (rounded up to a
	// page; it costs no memory). 0 means DefaultReserve.
	Reserve int
	// ExtendSize is how much a Memory grows at a time, rounded up to a
	// page (and at most Reserve); 0 means DefaultExtendSize. A file grows
	// by this step too, and on Linux its new pages are prefaulted in one
	// call (MADV_POPULATE_WRITE) rather than faulted one by one on first
	// write.
	ExtendSize int
	// ReadOnly opens a file for reading only (OpenFile only). Its pages are
	// mapped read-only: a view of it (Bytes, Bin, Slice) must not be
	// written through, or the store faults.
	ReadOnly bool
}

func optionsOf(opts *Options) (Options, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Reserve < 0 || o.ExtendSize < 0 {
		return o, errs.New(head(o.Name, "check options", "", ""),
			fmt.Sprintf("reserve %d, extend size %d", o.Reserve, o.ExtendSize), ErrOptions)
	}
	if o.Reserve == 0 {
		o.Reserve = DefaultReserve
	}
	if o.ExtendSize == 0 {
		o.ExtendSize = DefaultExtendSize
	}
	o.ExtendSize = vmem.RoundUp(min(o.ExtendSize, o.Reserve))
	return o, nil
}

// Memory is typed memory in one contiguous vmem region that grows in place.
//
// # Layout and states
//
// The region's ready prefix [0, ready) is mapped; the written prefix
// [0, Len()) is what was appended (or skipped over) and is the only part that
// can be read or put to. Append writes at Len() and advances it, growing the
// region by ExtendSize steps when the ready prefix is full. Jump and Skip move
// the append offset; bytes a forward Jump exposes read as zero, even if they
// were written before an earlier Jump back.
//
// # Errors and panics
//
// Reads and puts are the fast path and return no error: an offset whose value
// does not lie wholly inside the written prefix panics with an out-of-range
// message, as a Go slice index does (so does a put on read-only memory). Every
// operation that can grow (Append*, Jump, Skip) returns errors instead: a
// failed growth leaves the memory exactly as it was.
//
// # Invariants
//
//   - base is nil until the region first has ready bytes, then its fixed
//     base address until Close, then nil again.
//   - 0 <= len <= avail <= limit, avail <= ready; avail == min(ready, limit)
//     when writable; avail == -1 when read-only or closed, so that every
//     append, even of zero bytes, takes the slow path and fails there.
//   - wshort is 0 when writable and readOnlyShort when read-only or closed,
//     so puts, which must lie in [0, len-wshort), all fail on such memory.
//   - bytes in [len, max(hwm, len)) may be stale; bytes past that are zero.
//     A file's memory has no stale bytes (hwm == 0): a Jump back zeroes what
//     it drops, so a crash never brings dropped bytes back as written ones.
//
// # Files
//
// OpenFile maps a file: the written prefix is the file's contents; Close
// truncates the file to Len() (the growth steps are allocated ahead); Sync is
// msync. A read-only Memory sees the file as it was at open and Refresh maps
// what writers have appended since. One writer at a time: a second writable
// OpenFile of a file, in this process or another, is vmem.ErrInUse, while
// read-only ones coexist with the writer, which never cuts the file below
// what they map (vmem.MapFile has the lock protocol).
//
// # Concurrency
//
// A Memory is not safe for concurrent use when one of the goroutines writes,
// grows, refreshes or closes it; like a slice, it may be read from many
// goroutines at once. Close unmaps the memory, so a read or a view that races
// it (a data race, which the race detector reports) may fault like a use of
// freed memory: a program that closes memory others read must first make
// them stop.
type Memory struct {
	base   pointer // fixed start of the region; nil after Close
	len    int     // append offset: the length of the written prefix
	wshort int     // 0, or readOnlyShort when read-only or closed
	avail  int     // end of the ready prefix appends may use; -1 when read-only or closed
	hwm    int     // bytes in [len, hwm) may hold stale data from before a Jump back
	extend int     // growth step, a page multiple
	limit  int     // Options.Reserve: the most bytes the memory may hold
	zeroed int     // a file's bytes up to here were zeroed by a Jump back since the last Sync
	region *vmem.Region
	file   *os.File // nil for anonymous memory
	ro     bool
	name   string // Options.Name
	path   string // the file's path, "" for anonymous memory
}

// head is the start of an error about op with argument arg on the memory
// named name backed by the file at path (each may be "").
func head(name, op, path, arg string) string { return errs.Head("mapped", name, op, path, arg) }

// fail wraps err, with a detail when not "", in an error about op on m.
func (m *Memory) fail(op, arg, detail string, err error) error {
	return errs.New(head(m.name, op, m.path, arg), detail, err)
}

// New returns empty anonymous memory.
func New(opts *Options) (*Memory, error) {
	o, err := optionsOf(opts)
	if err != nil {
		return nil, err
	}
	if o.ReadOnly {
		return nil, errs.New(head(o.Name, "new", "", ""), "read-only anonymous memory", ErrOptions)
	}
	r, err := vmem.Reserve(o.Reserve, &vmem.Options{Name: o.Name})
	if err != nil {
		return nil, errs.New(head(o.Name, "new", "", ""), "", err)
	}
	m := &Memory{region: r, extend: o.ExtendSize, limit: o.Reserve, name: o.Name}
	m.watch()
	return m, nil
}

// Len returns the append offset: how many bytes have been written.
func (m *Memory) Len() int { return m.len }

// Name returns the name the memory was created with (a file's path by default).
func (m *Memory) Name() string {
	if m.name == "" {
		return m.path
	}
	return m.name
}

// ReadOnly reports whether the memory is a read-only file mapping.
func (m *Memory) ReadOnly() bool { return m.ro }

// Int8 returns the int8 at off.
func (m *Memory) Int8(off int) int8 { return int8(m.u8(off)) }

// Int16 returns the int16 at off.
func (m *Memory) Int16(off int) int16 { return int16(m.u16(off)) }

// Int32 returns the int32 at off.
func (m *Memory) Int32(off int) int32 { return int32(m.u32(off)) }

// Int64 returns the int64 at off.
func (m *Memory) Int64(off int) int64 { return int64(m.u64(off)) }

// Uint8 returns the uint8 at off.
func (m *Memory) Uint8(off int) uint8 { return m.u8(off) }

// Uint16 returns the uint16 at off.
func (m *Memory) Uint16(off int) uint16 { return m.u16(off) }

// Uint32 returns the uint32 at off.
func (m *Memory) Uint32(off int) uint32 { return m.u32(off) }

// Uint64 returns the uint64 at off.
func (m *Memory) Uint64(off int) uint64 { return m.u64(off) }

// Float32 returns the float32 at off.
func (m *Memory) Float32(off int) float32 { return math.Float32frombits(m.u32(off)) }

// Float64 returns the float64 at off.
func (m *Memory) Float64(off int) float64 { return math.Float64frombits(m.u64(off)) }

// Bool returns the bool at off: whether its byte is not zero.
func (m *Memory) Bool(off int) bool { return m.u8(off) != 0 }

// PutInt8 writes v at off.
func (m *Memory) PutInt8(off int, v int8) { m.put8(off, uint8(v)) }

// PutInt16 writes v at off.
func (m *Memory) PutInt16(off int, v int16) { m.put16(off, uint16(v)) }

// PutInt32 writes v at off.
func (m *Memory) PutInt32(off int, v int32) { m.put32(off, uint32(v)) }

// PutInt64 writes v at off.
func (m *Memory) PutInt64(off int, v int64) { m.put64(off, uint64(v)) }

// PutUint8 writes v at off.
func (m *Memory) PutUint8(off int, v uint8) { m.put8(off, v) }

// PutUint16 writes v at off.
func (m *Memory) PutUint16(off int, v uint16) { m.put16(off, v) }

// PutUint32 writes v at off.
func (m *Memory) PutUint32(off int, v uint32) { m.put32(off, v) }

// PutUint64 writes v at off.
func (m *Memory) PutUint64(off int, v uint64) { m.put64(off, v) }

// PutFloat32 writes v at off.
func (m *Memory) PutFloat32(off int, v float32) { m.put32(off, math.Float32bits(v)) }

// PutFloat64 writes v at off.
func (m *Memory) PutFloat64(off int, v float64) { m.put64(off, math.Float64bits(v)) }

// PutBool writes v at off as one byte, 1 or 0.
func (m *Memory) PutBool(off int, v bool) { m.put8(off, boolByte(v)) }

// AppendInt8 appends v.
func (m *Memory) AppendInt8(v int8) error { return m.add8(uint8(v)) }

// AppendInt16 appends v.
func (m *Memory) AppendInt16(v int16) error { return m.add16(uint16(v)) }

// AppendInt32 appends v.
func (m *Memory) AppendInt32(v int32) error { return m.add32(uint32(v)) }

// AppendInt64 appends v.
func (m *Memory) AppendInt64(v int64) error { return m.add64(uint64(v)) }

// AppendUint8 appends v.
func (m *Memory) AppendUint8(v uint8) error { return m.add8(v) }

// AppendUint16 appends v.
func (m *Memory) AppendUint16(v uint16) error { return m.add16(v) }

// AppendUint32 appends v.
func (m *Memory) AppendUint32(v uint32) error { return m.add32(v) }

// AppendUint64 appends v.
func (m *Memory) AppendUint64(v uint64) error { return m.add64(v) }

// AppendFloat32 appends v.
func (m *Memory) AppendFloat32(v float32) error { return m.add32(math.Float32bits(v)) }

// AppendFloat64 appends v.
func (m *Memory) AppendFloat64(v float64) error { return m.add64(math.Float64bits(v)) }

// AppendBool appends v as one byte, 1 or 0.
func (m *Memory) AppendBool(v bool) error { return m.add8(boolByte(v)) }

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

// StrLen returns the length of the string or binary value at off, -1 for null.
func (m *Memory) StrLen(off int) int { return max(int(int32(m.u32(off))), -1) }

// PutStr writes s at off as an int32 length and its bytes.
func (m *Memory) PutStr(off int, s string) { putSized(m, off, s) }

// PutBin writes b at off as an int32 length and its bytes; a nil b is null.
func (m *Memory) PutBin(off int, b []byte) {
	if b == nil {
		m.PutNull(off)
		return
	}
	putSized(m, off, b)
}

// PutNull writes a null string or binary value at off: the length -1.
func (m *Memory) PutNull(off int) { m.PutInt32(off, -1) }

// AppendNull appends a null string or binary value: the length -1.
func (m *Memory) AppendNull() error { return m.AppendInt32(-1) }

// addSlow appends v after growing the memory; on error nothing changes.
func addSlow[T Number](m *Memory, v T) error {
	if err := m.grow(sizeOf[T]()); err != nil {
		return err
	}
	return Append(m, v)
}

// appendSizedSlow appends a length and bytes after growing the memory.
func appendSizedSlow[S ~string | ~[]byte](m *Memory, s S) error {
	if len(s) > math.MaxInt32 {
		return m.fail("append", fmt.Sprintf("%d bytes", len(s)), "", ErrTooLong)
	}
	if err := m.grow(4 + len(s)); err != nil {
		return err
	}
	if _, ok := any(s).(string); ok {
		return m.AppendStr(string(s))
	}
	return m.AppendBin([]byte(s))
}

// readOnlyShort is wshort for memory that cannot be written: more than any
// Len, so len-wshort is negative and every put fails its bounds check.
const readOnlyShort = 1 << 62

// fillPoison poisons b in the checked build.
func fillPoison(b []byte) { check.Fill(b) }

// wlen is the length of the prefix puts may write: Len(), or 0 when read-only.
func (m *Memory) wlen() int { return max(m.len-m.wshort, 0) }

// RangeError is the panic value of a read, put or view of bytes outside the
// range it may touch (the written prefix; nothing for a put on read-only or
// closed memory), the counterpart of Go's index-out-of-range panic.
type RangeError struct {
	Op     string // "read", "write" or "view"
	Off, N int    // the access: N bytes at offset Off
	Len    int    // the length of the range it had to lie in
}

// Error describes the access.
func (e RangeError) Error() string {
	return fmt.Sprintf("mapped: %s of %d bytes at offset %d out of range [0:%d]", e.Op, e.N, e.Off, e.Len)
}

// RuntimeError marks RangeError as a runtime.Error, like an index out of range.
func (e RangeError) RuntimeError() {}

// Jump moves the append offset to off, growing the memory if needed. Bytes
// between the old and the new offset read as zero after a forward jump. On
// a file, a jump back zeroes the bytes it drops (QuestDB's truncate), so they
// never come back as written data after a crash; Sync makes that durable. On
// error nothing changes.
func (m *Memory) Jump(off int) error {
	if err := m.writable(); err != nil {
		return m.fail("jump", fmt.Sprintf("to %d", off), "", err)
	}
	if off < 0 {
		return m.fail("jump", fmt.Sprintf("to %d", off), "", ErrOffset)
	}
	if off > m.avail {
		if err := m.grow(off - m.len); err != nil {
			return err
		}
	}
	if off < m.len {
		m.drop(off)
	} else if end := min(off, m.hwm); end > m.len {
		m.clearRange(m.len, end-m.len, false)
	}
	m.len = off
	m.checkInvariants()
	return nil
}

// drop gives up the written bytes from off to len: a file's are zeroed at
// once (and flushed by the next Sync); anonymous memory's become stale, and
// poisoned in the checked build.
func (m *Memory) drop(off int) {
	if m.file != nil {
		m.clearRange(off, m.len-off, false)
		m.zeroed = max(m.zeroed, m.len)
		return
	}
	m.hwm = max(m.hwm, m.len)
	if check.On {
		m.clearRange(off, m.len-off, true)
	}
}

// Skip moves the append offset n bytes forward (or back, for negative n),
// growing the memory if needed; it is Jump(Len()+n).
func (m *Memory) Skip(n int) error {
	if n > math.MaxInt-m.len {
		return m.fail("skip", fmt.Sprintf("by %d from %d", n, m.len), "", ErrOffset)
	}
	return m.Jump(m.len + n)
}

// grow makes room for n bytes after the append offset: the ready prefix is
// extended to a multiple of the extend step (or to exactly the reservation, at
// its end). On error nothing changes.
func (m *Memory) grow(n int) error {
	if err := m.writable(); err != nil {
		return m.fail("grow", fmt.Sprintf("by %d bytes", n), "", err)
	}
	if n < 0 || n > m.limit-m.len {
		return m.fail("grow", fmt.Sprintf("by %d bytes", n), fmt.Sprintf("%d of %d written", m.len, m.limit), vmem.ErrExhausted)
	}
	end := m.len + n
	target := m.limit // the next multiple of the step, or the limit
	if r := end % m.extend; r == 0 {
		target = end
	} else if m.extend-r <= m.limit-end {
		target = end + m.extend - r
	}
	if err := m.region.Grow(target); err != nil {
		return m.fail("grow", fmt.Sprintf("by %d bytes", n), "", err)
	}
	old := m.avail
	m.avail = min(m.region.Len(), m.limit)
	m.base = regionBase(m.region)
	if m.file != nil {
		populate(bytesAt(at(m.base, old), m.avail-old))
	}
	m.checkInvariants()
	return nil
}

// writable reports why m cannot be written to, if it cannot: ErrClosed or
// ErrReadOnly, for the caller to wrap.
func (m *Memory) writable() error {
	if m.region == nil {
		return ErrClosed
	}
	if m.ro {
		return ErrReadOnly
	}
	return nil
}

// Sync flushes the written prefix of a file-backed memory to its file (and
// the bytes after it that a Jump back zeroed) and waits for the write
// (msync). It does nothing for anonymous memory.
func (m *Memory) Sync() error {
	err := ErrClosed
	if m.region != nil {
		err = m.region.Sync(0, max(m.len, m.zeroed))
	}
	if err != nil {
		return m.fail("sync", "", "", err)
	}
	m.zeroed = 0
	return nil
}

// SyncRange flushes the written bytes [off, off+n) to the file (widened to
// whole pages) and waits for the write. It does nothing for anonymous memory.
func (m *Memory) SyncRange(off, n int) error {
	err := ErrClosed
	if m.region != nil {
		err = m.syncRange(off, n)
	}
	if err != nil {
		return m.fail("sync", fmt.Sprintf("[%d, +%d)", off, n), "", err)
	}
	return nil
}

// syncRange is SyncRange on open memory, its error not yet wrapped.
func (m *Memory) syncRange(off, n int) error {
	if off < 0 || n < 0 || off > m.len-n {
		return fmt.Errorf("%d written: %w", m.len, ErrOffset)
	}
	return m.region.Sync(off, n)
}

// Close unmaps the memory; a writable file is then truncated to Len() and
// closed. Every view handed out becomes invalid; later reads and puts panic as
// out of range and every other method returns ErrClosed. A writable file that
// a read-only Memory (in this process or another) maps past Len() keeps its
// length instead, its bytes past Len() zero, as after a crash.
func (m *Memory) Close() error {
	if m.region == nil {
		return m.fail("close", "", "", ErrClosed)
	}
	r, n := m.region, m.len
	m.base, m.len, m.wshort, m.avail, m.hwm, m.region = nil, 0, readOnlyShort, -1, 0, nil
	var err error
	if m.file != nil && !m.ro {
		err = r.CloseTruncate(n)
	} else {
		err = r.Close()
	}
	if m.file != nil {
		err = errors.Join(err, m.file.Close())
	}
	if err != nil {
		return m.fail("close", "", "", err)
	}
	return nil
}

// checkInvariants verifies the documented invariants in the checked build.
func (m *Memory) checkInvariants() {
	if !check.On || m.region == nil {
		return
	}
	ready := m.region.Len()
	check.Invariant(m.base == regionBase(m.region), "mapped %q: base moved", m.Name())
	check.Invariant(0 <= m.len && m.len <= m.limit && m.len <= ready, "mapped %q: len %d limit %d ready %d", m.Name(), m.len, m.limit, ready)
	check.Invariant(m.ro && m.avail == -1 || !m.ro && m.len <= m.avail && m.avail == min(ready, m.limit),
		"mapped %q: len %d avail %d ready %d limit %d read-only %v", m.Name(), m.len, m.avail, ready, m.limit, m.ro)
	check.Invariant(m.wshort == 0 && !m.ro || m.wshort == readOnlyShort && m.ro, "mapped %q: wshort %d read-only %v", m.Name(), m.wshort, m.ro)
	check.Invariant(m.file == nil || m.hwm == 0, "mapped %q: a file with stale bytes up to %d", m.Name(), m.hwm)
}

// watch arranges, in the checked build, for a Memory that is garbage
// collected without Close to be reported with the bytes it leaked.
func (m *Memory) watch() {
	if check.On {
		runtime.AddCleanup(m, reportLeak, m.region)
	}
}

// leakReport is where the checked build reports leaks; tests replace it.
var leakReport atomic.Pointer[func(what string, bytes int)]

func init() {
	f := func(what string, bytes int) {
		fmt.Fprintf(os.Stderr, "offheap: mapped: %s garbage collected without Close: %d bytes leaked\n", what, bytes)
	}
	leakReport.Store(&f)
}

func reportLeak(r *vmem.Region) {
	if n := r.Len(); n > 0 {
		(*leakReport.Load())(fmt.Sprintf("memory %q", r.Name()), n)
	}
}
