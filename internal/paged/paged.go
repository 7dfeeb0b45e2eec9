// Package paged is the legacy design QuestDB replaced with contiguous memory:
// typed memory made of fixed power-of-two pages obtained one by one, with a
// cached hot page and byte-wise assembly of values that straddle a page edge.
// It is not part of offheap's API: it is the baseline of the mapped
// benchmarks (internal/workload/access) and runs through mapped's own test
// suite, so both designs meet one contract. The design is on Memory.
package paged

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"runtime"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/errs"
	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

// Defaults for the zero Options.
const (
	DefaultReserve  = 64 << 30 // the most bytes a Memory holds
	DefaultPageSize = 1 << 20  // page size
)

// Options tune a Memory; the zero value (or nil) is ready to use.
type Options struct {
	// Name labels errors and the pages' mappings in /proc/PID/maps.
	Name string
	// Reserve is the most bytes the memory may ever hold: it stops
	// obtaining pages there. 0 means DefaultReserve.
	Reserve int
	// PageSize is the page size, a power of two of at least 8; 0 means
	// DefaultPageSize.
	PageSize int
}

// Memory is anonymous typed memory made of fixed-size pages obtained one at a
// time, each its own mapping: the page-table design QuestDB used before
// contiguous memory. It has mapped.Memory's methods with the same meaning
// and errors (mapped's sentinels and RangeError panics), except that it has
// no file form, so one test suite runs over both.
//
// # Design
//
// Offset off lives in page off>>shift at off&mask. A value that lies within
// one page is read or written with one load or store; a value that straddles
// a page edge is assembled byte by byte. As in QuestDB, the last page used
// for reads and puts is cached (its base and the offsets it covers), so
// accesses that stay in one page take the fast path: two compares, a
// subtraction and a load; the page appends go to is cached the same way.
// Byte views (Bytes, Str, Bin) are zero-copy when the value lies in one page
// and a copy otherwise, the price of the design.
//
// # Invariants
//
//   - pages[i] covers offsets [i<<shift, (i+1)<<shift); len <= len(pages)<<shift.
//   - hot covers [hotLo, hotHi) with hotHi <= min(page end, len), or is empty
//     (hotLo == hotHi == 0).
//   - app is the page holding offset len with appLo its start and appHi its
//     end (or limit, if that comes first), or is empty (appHi == 0) and the
//     next append takes the slow path; appHi is -1 once closed, so every
//     append, even of zero bytes, takes the slow path and fails there.
//   - bytes in [len, max(hwm, len)) may be stale; bytes past that are zero.
//
// A Memory is not safe for concurrent use at all: even a read may move the
// cached hot page (so it was in QuestDB).
type Memory struct {
	hot          pointer // base of the cached page for reads and puts
	hotLo, hotHi int     // offsets the hot page covers, clipped to len
	app          pointer // base of the page appends go to
	appLo, appHi int     // offsets the append page covers
	len          int     // append offset
	hwm          int
	shift        uint
	size         int // page size, 1<<shift
	limit        int // most bytes: Options.Reserve, exactly as Memory holds it
	pages        *pageTable
	name         string
}

// pageTable is the list of pages, apart from Memory so a cleanup can see it.
type pageTable struct {
	regions []*vmem.Region
	bases   []pointer
	closed  bool
}

// New returns empty paged memory with pages of opts.PageSize bytes. Bad
// options are mapped.ErrOptions.
func New(opts *Options) (*Memory, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.Reserve == 0 {
		o.Reserve = DefaultReserve
	}
	if o.PageSize == 0 {
		o.PageSize = DefaultPageSize
	}
	if o.Reserve < 0 || o.PageSize < 8 || o.PageSize&(o.PageSize-1) != 0 {
		return nil, errs.New(head(o.Name, "new", ""), fmt.Sprintf("reserve %d, page size %d (a power of two >= 8)", o.Reserve, o.PageSize), mapped.ErrOptions)
	}
	p := &Memory{
		shift: uint(bits.TrailingZeros(uint(o.PageSize))),
		size:  o.PageSize,
		limit: o.Reserve,
		pages: &pageTable{},
		name:  o.Name,
	}
	if check.On {
		runtime.AddCleanup(p, reportPagesLeak, p.pages)
	}
	return p, nil
}

// head is the start of an error about op with argument arg on the memory
// named name (either may be "").
func head(name, op, arg string) string { return errs.Head("paged", name, op, "", arg) }

// fail wraps err, with a detail when not "", in an error about op on p.
func (p *Memory) fail(op, arg, detail string, err error) error {
	return errs.New(head(p.name, op, arg), detail, err)
}

// leakReport is where the checked build reports leaks; tests replace it.
var leakReport atomic.Pointer[func(what string, bytes int)]

func init() {
	f := func(what string, bytes int) {
		fmt.Fprintf(os.Stderr, "offheap: paged: %s garbage collected without Close: %d bytes leaked\n", what, bytes)
	}
	leakReport.Store(&f)
}

func reportPagesLeak(t *pageTable) {
	if !t.closed && len(t.regions) > 0 {
		(*leakReport.Load())("paged memory", len(t.regions)*t.regions[0].Len())
	}
}

// Len returns the append offset: how many bytes have been written.
func (p *Memory) Len() int { return p.len }

// The slow paths of the accessors in unsafe.go: a value outside the hot
// page, or straddling a page edge, or an append that needs a new page.

func pgetSlow[T mapped.Number](p *Memory, off int) T {
	n := sizeOf[T]()
	p.inRange("read", off, n)
	if p.within(off, n) {
		p.cacheHot(off)
		return pload[T](p.hot, off-p.hotLo)
	}
	var v T
	p.gather(asBytes(&v), off)
	return v
}

func pputSlow[T mapped.Number](p *Memory, off int, v T) {
	n := sizeOf[T]()
	p.inRange("write", off, n)
	if p.within(off, n) {
		p.cacheHot(off)
		pstore(p.hot, off-p.hotLo, v)
		return
	}
	p.scatter(off, asBytes(&v))
}

func paddSlow[T mapped.Number](p *Memory, v T) error {
	if err := p.reserve(sizeOf[T]()); err != nil {
		return err
	}
	off := p.len
	p.len += sizeOf[T]()
	p.scatter(off, asBytes(&v))
	p.cacheApp()
	return nil
}

// within reports whether the n bytes at off lie in one page.
func (p *Memory) within(off, n int) bool { return off&(p.size-1) <= p.size-n }

// cacheHot makes the page holding off the hot page.
func (p *Memory) cacheHot(off int) {
	i := off >> p.shift
	p.hot = p.pages.bases[i]
	p.hotLo = i << p.shift
	p.hotHi = min(p.hotLo+p.size, p.len)
}

// cacheApp makes the page holding len the append page, if it exists yet.
func (p *Memory) cacheApp() {
	i := p.len >> p.shift
	if i >= len(p.pages.bases) {
		p.app, p.appLo, p.appHi = nil, 0, 0
		p.checkInvariants()
		return
	}
	p.app, p.appLo, p.appHi = p.pages.bases[i], i<<p.shift, min((i+1)<<p.shift, p.limit)
	p.checkInvariants()
}

// gather copies the bytes at off into dst, page by page.
func (p *Memory) gather(dst []byte, off int) {
	for len(dst) > 0 {
		i, o := off>>p.shift, off&(p.size-1)
		k := copy(dst, pbytes(p.pages.bases[i], o, p.size-o))
		dst, off = dst[k:], off+k
	}
}

// scatter copies src to off, page by page.
func (p *Memory) scatter(off int, src []byte) { scatter(p, off, src) }

// scatter copies the bytes of src to off of p, page by page.
func scatter[S ~string | ~[]byte](p *Memory, off int, src S) {
	for len(src) > 0 {
		i, o := off>>p.shift, off&(p.size-1)
		k := copy(pbytes(p.pages.bases[i], o, p.size-o), src)
		src, off = src[k:], off+k
	}
}

// zero clears [off, off+n), page by page.
func (p *Memory) zero(off, n int) {
	for n > 0 {
		i, o := off>>p.shift, off&(p.size-1)
		k := min(n, p.size-o)
		clear(pbytes(p.pages.bases[i], o, k))
		off, n = off+k, n-k
	}
}

// inRange panics with a RangeError, like a slice index, when [off, off+n) is
// not written.
func (p *Memory) inRange(op string, off, n int) {
	if n < 0 || off < 0 || off > p.len-n {
		panic(mapped.RangeError{Op: op, Off: off, N: n, Len: p.len})
	}
}

// reserve obtains the pages needed for n more bytes after len. On error
// nothing changes (pages obtained before the failure are kept; they are
// beyond len and read as zero).
func (p *Memory) reserve(n int) error {
	if p.pages.closed {
		return p.fail("grow", fmt.Sprintf("by %d bytes", n), "", mapped.ErrClosed)
	}
	if n < 0 || n > p.limit-p.len {
		return p.fail("grow", fmt.Sprintf("by %d bytes", n), fmt.Sprintf("%d of %d written", p.len, p.limit), vmem.ErrExhausted)
	}
	for end := p.len + n; len(p.pages.bases)<<p.shift < end; {
		if err := p.addPage(); err != nil {
			return err
		}
	}
	return nil
}

// addPage obtains one more page: its own region, made ready at once.
func (p *Memory) addPage() error {
	r, err := vmem.Reserve(p.size, &vmem.Options{Name: p.name})
	if err == nil {
		if err = r.Grow(p.size); err != nil {
			_ = r.Close()
		}
	}
	if err != nil {
		return p.fail("grow", "", fmt.Sprintf("page %d", len(p.pages.regions)), err)
	}
	p.pages.regions = append(p.pages.regions, r)
	p.pages.bases = append(p.pages.bases, r.Base())
	return nil
}

// Int8 returns the int8 at off.
func (p *Memory) Int8(off int) int8 { return int8(p.u8(off)) }

// Int16 returns the int16 at off.
func (p *Memory) Int16(off int) int16 { return int16(p.u16(off)) }

// Int32 returns the int32 at off.
func (p *Memory) Int32(off int) int32 { return int32(p.u32(off)) }

// Int64 returns the int64 at off.
func (p *Memory) Int64(off int) int64 { return int64(p.u64(off)) }

// Uint8 returns the uint8 at off.
func (p *Memory) Uint8(off int) uint8 { return p.u8(off) }

// Uint16 returns the uint16 at off.
func (p *Memory) Uint16(off int) uint16 { return p.u16(off) }

// Uint32 returns the uint32 at off.
func (p *Memory) Uint32(off int) uint32 { return p.u32(off) }

// Uint64 returns the uint64 at off.
func (p *Memory) Uint64(off int) uint64 { return p.u64(off) }

// Float32 returns the float32 at off.
func (p *Memory) Float32(off int) float32 { return math.Float32frombits(p.u32(off)) }

// Float64 returns the float64 at off.
func (p *Memory) Float64(off int) float64 { return math.Float64frombits(p.u64(off)) }

// Bool returns the bool at off: whether its byte is not zero.
func (p *Memory) Bool(off int) bool { return p.u8(off) != 0 }

// PutInt8 writes v at off.
func (p *Memory) PutInt8(off int, v int8) { p.put8(off, uint8(v)) }

// PutInt16 writes v at off.
func (p *Memory) PutInt16(off int, v int16) { p.put16(off, uint16(v)) }

// PutInt32 writes v at off.
func (p *Memory) PutInt32(off int, v int32) { p.put32(off, uint32(v)) }

// PutInt64 writes v at off.
func (p *Memory) PutInt64(off int, v int64) { p.put64(off, uint64(v)) }

// PutUint8 writes v at off.
func (p *Memory) PutUint8(off int, v uint8) { p.put8(off, v) }

// PutUint16 writes v at off.
func (p *Memory) PutUint16(off int, v uint16) { p.put16(off, v) }

// PutUint32 writes v at off.
func (p *Memory) PutUint32(off int, v uint32) { p.put32(off, v) }

// PutUint64 writes v at off.
func (p *Memory) PutUint64(off int, v uint64) { p.put64(off, v) }

// PutFloat32 writes v at off.
func (p *Memory) PutFloat32(off int, v float32) { p.put32(off, math.Float32bits(v)) }

// PutFloat64 writes v at off.
func (p *Memory) PutFloat64(off int, v float64) { p.put64(off, math.Float64bits(v)) }

// PutBool writes v at off as one byte, 1 or 0.
func (p *Memory) PutBool(off int, v bool) { p.put8(off, boolByte(v)) }

// AppendInt8 appends v.
func (p *Memory) AppendInt8(v int8) error { return p.add8(uint8(v)) }

// AppendInt16 appends v.
func (p *Memory) AppendInt16(v int16) error { return p.add16(uint16(v)) }

// AppendInt32 appends v.
func (p *Memory) AppendInt32(v int32) error { return p.add32(uint32(v)) }

// AppendInt64 appends v.
func (p *Memory) AppendInt64(v int64) error { return p.add64(uint64(v)) }

// AppendUint8 appends v.
func (p *Memory) AppendUint8(v uint8) error { return p.add8(v) }

// AppendUint16 appends v.
func (p *Memory) AppendUint16(v uint16) error { return p.add16(v) }

// AppendUint32 appends v.
func (p *Memory) AppendUint32(v uint32) error { return p.add32(v) }

// AppendUint64 appends v.
func (p *Memory) AppendUint64(v uint64) error { return p.add64(v) }

// AppendFloat32 appends v.
func (p *Memory) AppendFloat32(v float32) error { return p.add32(math.Float32bits(v)) }

// AppendFloat64 appends v.
func (p *Memory) AppendFloat64(v float64) error { return p.add64(math.Float64bits(v)) }

// AppendBool appends v as one byte, 1 or 0.
func (p *Memory) AppendBool(v bool) error { return p.add8(boolByte(v)) }

// PutBytes copies b to off.
func (p *Memory) PutBytes(off int, b []byte) {
	p.inRange("write", off, len(b))
	p.scatter(off, b)
}

// AppendBytes appends the bytes of b, without a length.
func (p *Memory) AppendBytes(b []byte) error {
	if p.len <= p.appHi-len(b) {
		copy(pbytes(p.app, p.len-p.appLo, len(b)), b)
		p.len += len(b)
		return nil
	}
	if err := p.reserve(len(b)); err != nil {
		return err
	}
	off := p.len
	p.len += len(b)
	p.scatter(off, b)
	p.cacheApp()
	return nil
}

// Bin returns the binary value at off, nil for null and empty but not nil
// for length 0: a view when it lies in one page, a copy otherwise.
func (p *Memory) Bin(off int) []byte {
	n := p.StrLen(off)
	if n < 0 {
		return nil
	}
	return p.Bytes(off+4, n)
}

// StrLen returns the length of the string or binary value at off, -1 for null.
func (p *Memory) StrLen(off int) int { return max(int(int32(p.u32(off))), -1) }

// PutStr writes s at off as an int32 length and its bytes.
func (p *Memory) PutStr(off int, s string) {
	if len(s) > math.MaxInt32 {
		panic(mapped.RangeError{Op: "write", Off: off, N: len(s), Len: p.len})
	}
	p.inRange("write", off, 4+len(s))
	p.PutInt32(off, int32(len(s)))
	scatter(p, off+4, s)
}

// PutBin writes b at off as an int32 length and its bytes; a nil b is null.
func (p *Memory) PutBin(off int, b []byte) {
	if b == nil {
		p.PutNull(off)
		return
	}
	p.inRange("write", off, 4+len(b))
	p.PutInt32(off, int32(len(b)))
	p.scatter(off+4, b)
}

// PutNull writes a null string or binary value at off: the length -1.
func (p *Memory) PutNull(off int) { p.PutInt32(off, -1) }

// AppendBin appends b as an int32 length and its bytes; a nil b is null.
func (p *Memory) AppendBin(b []byte) error {
	if b == nil {
		return p.AppendNull()
	}
	return pappendSized(p, b)
}

// AppendNull appends a null string or binary value: the length -1.
func (p *Memory) AppendNull() error { return p.AppendInt32(-1) }

// pappendSizedSlow appends an int32 length and the bytes of s that do not
// fit the cached append page.
func pappendSizedSlow[S ~string | ~[]byte](p *Memory, s S) error {
	if len(s) > math.MaxInt32 {
		return p.fail("append", fmt.Sprintf("%d bytes", len(s)), "", mapped.ErrTooLong)
	}
	if err := p.reserve(4 + len(s)); err != nil {
		return err
	}
	off, n := p.len, int32(len(s))
	p.len += 4 + len(s)
	p.scatter(off, asBytes(&n))
	scatter(p, off+4, s)
	p.cacheApp()
	return nil
}

// Jump moves the append offset to off, obtaining pages if needed. Bytes
// between the old and the new offset read as zero after a forward jump. On
// error nothing changes.
func (p *Memory) Jump(off int) error {
	if off < 0 {
		return p.fail("jump", fmt.Sprintf("to %d", off), "", mapped.ErrOffset)
	}
	if off > p.len {
		if err := p.reserve(off - p.len); err != nil {
			return err
		}
	} else if p.pages.closed {
		return p.fail("jump", fmt.Sprintf("to %d", off), "", mapped.ErrClosed)
	}
	if off < p.len {
		p.hwm = max(p.hwm, p.len)
		if check.On {
			p.poison(off, p.len-off)
		}
	} else if end := min(off, p.hwm); end > p.len {
		p.zero(p.len, end-p.len)
	}
	p.len = off
	p.hotHi = min(p.hotHi, off)
	if p.hotHi <= p.hotLo {
		p.hot, p.hotLo, p.hotHi = nil, 0, 0
	}
	p.cacheApp()
	return nil
}

// checkInvariants verifies the documented invariants in the checked build.
func (p *Memory) checkInvariants() {
	if !check.On || p.pages.closed {
		return
	}
	n := len(p.pages.bases)
	check.Invariant(n == len(p.pages.regions) && p.len <= n<<p.shift && p.len <= p.limit,
		"paged %q: %d pages, len %d, limit %d", p.name, n, p.len, p.limit)
	check.Invariant(p.hot == nil && p.hotLo == 0 && p.hotHi == 0 ||
		p.hotLo>>p.shift < n && p.hot == p.pages.bases[p.hotLo>>p.shift] && p.hotHi <= min(p.hotLo+p.size, p.len),
		"paged %q: hot page [%d, %d) of len %d", p.name, p.hotLo, p.hotHi, p.len)
	check.Invariant(p.appHi == 0 || p.appLo <= p.len && p.len <= p.appHi && p.app == p.pages.bases[p.appLo>>p.shift],
		"paged %q: append page at %d for len %d", p.name, p.appLo, p.len)
}

// poison fills [off, off+n) with check.Poison, page by page.
func (p *Memory) poison(off, n int) {
	for n > 0 {
		i, o := off>>p.shift, off&(p.size-1)
		k := min(n, p.size-o)
		check.Fill(pbytes(p.pages.bases[i], o, k))
		off, n = off+k, n-k
	}
}

// Skip moves the append offset n bytes forward (or back, for negative n); it
// is Jump(Len()+n).
func (p *Memory) Skip(n int) error {
	if n > math.MaxInt-p.len {
		return p.fail("skip", fmt.Sprintf("by %d from %d", n, p.len), "", mapped.ErrOffset)
	}
	return p.Jump(p.len + n)
}

// Sync does nothing: paged memory is anonymous. It returns ErrClosed after Close.
func (p *Memory) Sync() error {
	if p.pages.closed {
		return p.fail("sync", "", "", mapped.ErrClosed)
	}
	return nil
}

// Close unmaps every page. Views handed out become invalid; later reads and
// puts panic as out of range and every other method returns ErrClosed.
func (p *Memory) Close() error {
	if p.pages.closed {
		return p.fail("close", "", "", mapped.ErrClosed)
	}
	var err error
	for _, r := range p.pages.regions {
		err = errors.Join(err, r.Close())
	}
	p.pages.closed = true
	p.pages.regions, p.pages.bases = nil, nil
	p.hot, p.hotLo, p.hotHi, p.app, p.appLo, p.appHi, p.len, p.hwm = nil, 0, 0, nil, 0, -1, 0, 0
	if err != nil {
		return p.fail("close", "", "", err)
	}
	return nil
}

func boolByte(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}
