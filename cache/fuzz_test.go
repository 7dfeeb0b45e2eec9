package cache

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/offheap/offheap/internal/fuzzops"
	"github.com/offheap/offheap/pool"
)

// model is the reference for FuzzCache: a map with a byte budget. Eviction
// is the policy's choice, so the model learns it: a key the cache no longer
// holds (Has says so) leaves the model, unless the model knows it cannot
// have been evicted (pinned and not deleted), which is then a failure.
type model struct {
	t       *testing.T
	c       *Cache
	align   int
	budget  int
	vals    map[string][]byte
	pins    []*mpin
	foreign []pool.Ref // another pool user's segments (shared pool)
	p       *pool.Pool
}

// mpin is one Pin: its key, the value it saw, and its view.
type mpin struct {
	key, val []byte
	view     []byte
	h        Handle
	live     bool // the pinned entry is still the key's (not deleted or replaced)
}

func (m *model) weight(k, v []byte) int { return (len(k) + len(v) + m.align - 1) &^ (m.align - 1) }

func (m *model) fail(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf(format, args...)
}

// pinnedLive reports whether key has a pin on its current value.
func (m *model) pinnedLive(key string) bool {
	for _, p := range m.pins {
		if p.live && string(p.key) == key {
			return true
		}
	}
	return false
}

// unlive marks the pins on key's current value as pinning a gone entry.
func (m *model) unlive(key string) {
	for _, p := range m.pins {
		if string(p.key) == key {
			p.live = false
		}
	}
}

func (m *model) set(k, v []byte) {
	m.t.Helper()
	err := m.c.Set(k, v)
	if err == nil || errors.Is(err, ErrRejected) || errors.Is(err, ErrFull) {
		m.unlive(string(k)) // the old value is out
	}
	switch {
	case err == nil:
		m.vals[string(k)] = bytes.Clone(v)
		if got, ok := m.c.Get(nil, k); !ok || !bytes.Equal(got, v) {
			m.fail("set %q: not readable at once (%v)", k, ok)
		}
		return
	case len(k) == 0:
		if !errors.Is(err, ErrEmptyKey) {
			m.fail("set empty key: %v", err)
		}
		return
	case m.weight(k, v) > m.budget || m.p != nil && m.weight(k, v) > m.p.Stats().MaxCapacity:
		if !errors.Is(err, ErrTooLarge) {
			m.fail("set %d bytes over a budget of %d: %v", m.weight(k, v), m.budget, err)
		}
		return // bad input: the old value stays
	case errors.Is(err, ErrRejected):
	case errors.Is(err, ErrFull):
		delete(m.vals, string(k))
		m.learn()
		// Nothing unpinned may be left.
		for key := range m.vals {
			if !m.pinnedLive(key) {
				m.fail("set %q failed with %v, but %q is unpinned", k, err, key)
			}
		}
	default:
		m.fail("set %q: %v", k, err)
	}
	delete(m.vals, string(k))
	if m.c.Has(k) {
		m.fail("set %q failed with %v, yet the key is held", k, err)
	}
}

func (m *model) get(k []byte) {
	m.t.Helper()
	got, ok := m.c.Get([]byte("prefix"), k)
	if !bytes.HasPrefix(got, []byte("prefix")) {
		m.fail("get %q did not append to dst: %q", k, got)
	}
	want, held := m.vals[string(k)]
	switch {
	case ok && !held:
		m.fail("get %q: hit %q, model holds nothing", k, got)
	case ok && !bytes.Equal(got[6:], want):
		m.fail("get %q: %q, want %q", k, got[6:], want)
	case !ok && m.pinnedLive(string(k)):
		m.fail("get %q: miss, but the entry is pinned", k)
	case !ok:
		delete(m.vals, string(k))
	}
}

func (m *model) has(k []byte) {
	m.t.Helper()
	_, held := m.vals[string(k)]
	switch ok := m.c.Has(k); {
	case ok && !held:
		m.fail("has %q: true, model holds nothing", k)
	case !ok && m.pinnedLive(string(k)):
		m.fail("has %q: false, but the entry is pinned", k)
	case !ok:
		delete(m.vals, string(k))
	}
}

func (m *model) del(k []byte) {
	m.t.Helper()
	found, err := m.c.Delete(k)
	if len(k) == 0 {
		if !errors.Is(err, ErrEmptyKey) {
			m.fail("delete empty key: %v", err)
		}
		return
	}
	_, held := m.vals[string(k)]
	switch {
	case err != nil:
		m.fail("delete %q: %v", k, err)
	case found && !held:
		m.fail("delete %q found what the model does not hold", k)
	case !found && m.pinnedLive(string(k)):
		m.fail("delete %q: not found, but the entry is pinned", k)
	}
	delete(m.vals, string(k))
	m.unlive(string(k))
}

func (m *model) pin(k []byte) {
	m.t.Helper()
	view, h, err := m.c.Pin(k)
	want, held := m.vals[string(k)]
	switch {
	case len(k) == 0:
		if !errors.Is(err, ErrEmptyKey) {
			m.fail("pin empty key: %v", err)
		}
	case err == ErrNotFound:
		if m.pinnedLive(string(k)) {
			m.fail("pin %q: not found, but the entry is pinned", k)
		}
		delete(m.vals, string(k))
	case err != nil:
		m.fail("pin %q: %v", k, err)
	case !held || !bytes.Equal(view, want):
		m.fail("pin %q: %q, model holds %q (%v)", k, view, want, held)
	default:
		m.pins = append(m.pins, &mpin{key: bytes.Clone(k), val: bytes.Clone(view), view: view, h: h, live: true})
	}
}

func (m *model) release(i int) {
	m.t.Helper()
	if len(m.pins) == 0 {
		if err := (Handle{}).Release(); !errors.Is(err, ErrReleased) {
			m.fail("release of the zero handle: %v", err)
		}
		return
	}
	i %= len(m.pins)
	p := m.pins[i]
	if !bytes.Equal(p.view, p.val) {
		m.fail("pinned view of %q changed to %q from %q", p.key, p.view, p.val)
	}
	if err := p.h.Release(); err != nil {
		m.fail("release: %v", err)
	}
	if err := p.h.Release(); !errors.Is(err, ErrReleased) {
		m.fail("second release: %v", err)
	}
	m.pins = append(m.pins[:i], m.pins[i+1:]...)
}

func (m *model) resize(n int) {
	m.t.Helper()
	err := m.c.Resize(n)
	switch {
	case n <= 0:
		if !errors.Is(err, ErrInvalid) {
			m.fail("resize to %d: %v", n, err)
		}
	case n > m.c.Stats().MaxBudget:
		if !errors.Is(err, ErrTooLarge) {
			m.fail("resize to %d: %v", n, err)
		}
	case err == nil:
		m.budget = n
	case errors.Is(err, ErrFull):
		m.learn()
		if st := m.c.Stats(); st.BytesPinned <= n && st.BytesUsed == st.BytesPinned {
			m.fail("resize to %d failed with %d bytes pinned, %d used: %v", n, st.BytesPinned, st.BytesUsed, err)
		}
	default:
		m.fail("resize to %d: %v", n, err)
	}
}

// commitForeign has another user of a shared pool commit n bytes; a full
// pool makes the cache give way (its unpinned entries).
func (m *model) commitForeign(n int) {
	if m.p == nil {
		return
	}
	r, err := m.p.Commit(make([]byte, n))
	if err == nil {
		m.foreign = append(m.foreign, r)
		return
	}
	if !errors.Is(err, pool.ErrFull) && !errors.Is(err, pool.ErrTooLarge) {
		m.fail("foreign commit: %v", err)
	}
}

func (m *model) releaseForeign(i int) {
	if len(m.foreign) == 0 {
		return
	}
	i %= len(m.foreign)
	if err := m.p.Release(m.foreign[i]); err != nil {
		m.fail("foreign release: %v", err)
	}
	m.foreign = append(m.foreign[:i], m.foreign[i+1:]...)
}

// learn drops from the model the keys the cache no longer holds, failing
// for one it must hold.
func (m *model) learn() {
	m.t.Helper()
	for k := range m.vals {
		if !m.c.Has([]byte(k)) {
			if m.pinnedLive(k) {
				m.fail("%q was evicted while pinned", k)
			}
			delete(m.vals, k)
		}
	}
}

// check compares the cache's figures with the model's, exactly.
func (m *model) check() {
	m.t.Helper()
	m.learn()
	st := m.c.Stats()
	used, pinned := 0, 0
	seen := map[*byte]bool{}
	for k, v := range m.vals {
		used += m.weight([]byte(k), v)
	}
	for _, p := range m.pins {
		id := unsafe.SliceData(p.view) // pins of one entry share it; entries never do
		if seen[id] {
			continue
		}
		seen[id] = true
		pinned += m.weight(p.key, p.val)
		if !p.live {
			used += m.weight(p.key, p.val)
		}
		if !bytes.Equal(p.view, p.val) {
			m.fail("pinned view of %q changed to %q from %q", p.key, p.view, p.val)
		}
	}
	switch {
	case st.Entries != len(m.vals) || m.c.Len() != len(m.vals):
		m.fail("%d entries (Len %d), model holds %d", st.Entries, m.c.Len(), len(m.vals))
	case st.BytesUsed != used:
		m.fail("BytesUsed %d, model %d", st.BytesUsed, used)
	case st.BytesUsed > m.budget || st.Budget != m.budget:
		m.fail("BytesUsed %d, budget %d (model %d)", st.BytesUsed, st.Budget, m.budget)
	case st.Handles != len(m.pins):
		m.fail("%d handles, model %d", st.Handles, len(m.pins))
	case st.BytesPinned != pinned:
		m.fail("BytesPinned %d, model %d", st.BytesPinned, pinned)
	}
}

// closeAll checks Close with pins out, then releases them, closes, and
// checks use after Close.
func (m *model) closeAll() {
	m.t.Helper()
	if len(m.pins) > 0 {
		if err := m.c.Close(); !errors.Is(err, ErrBusy) {
			m.fail("close with %d pins: %v", len(m.pins), err)
		}
		m.check()
		for len(m.pins) > 0 {
			m.release(0)
		}
	}
	if err := m.c.Close(); err != nil {
		m.fail("close: %v", err)
	}
	k := []byte("k")
	if err := m.c.Set(k, k); !errors.Is(err, ErrClosed) {
		m.fail("set after close: %v", err)
	}
	if _, ok := m.c.Get(nil, k); ok || m.c.Has(k) || m.c.Len() != 0 {
		m.fail("get after close hit")
	}
	if _, _, err := m.c.Pin(k); !errors.Is(err, ErrClosed) {
		m.fail("pin after close: %v", err)
	}
	if _, err := m.c.Delete(k); !errors.Is(err, ErrClosed) {
		m.fail("delete after close: %v", err)
	}
	if err := m.c.Resize(m.budget); !errors.Is(err, ErrClosed) {
		m.fail("resize after close: %v", err)
	}
	if err := m.c.Close(); !errors.Is(err, ErrClosed) {
		m.fail("second close: %v", err)
	}
	for _, r := range m.foreign {
		_ = m.p.Release(r)
	}
	if m.p != nil {
		if st := m.p.Stats(); st.Used != 0 {
			m.fail("the shared pool holds %d bytes after the cache closed", st.Used)
		}
		if err := m.p.Close(); err != nil {
			m.fail("pool close: %v", err)
		}
	}
}

var trace = os.Getenv("CACHE_FUZZ_TRACE") != ""

// FuzzCache runs random operation sequences (set, get, has, delete, pin,
// release, resize, another pool user's commits and releases) against the
// model, checking values, that pinned entries are never evicted, moved or
// changed, and the byte figures exactly, after every operation.
func FuzzCache(f *testing.F) {
	f.Add([]byte{0, 0, 1, 10, 0, 2, 40, 1, 1, 3, 1, 4, 0, 5, 3})
	f.Add([]byte{1, 3, 0, 1, 200, 0, 2, 200, 0, 3, 200, 3, 1, 3, 2, 0, 4, 250, 1, 1, 4, 0, 5, 1, 6, 2})
	f.Add([]byte{2, 8, 0, 0, 30, 3, 0, 0, 1, 30, 0, 0, 30, 2, 0, 9, 100, 9, 200, 10, 0, 4, 0, 1, 0})
	f.Add(bytes.Repeat([]byte{0, 5, 60, 3, 5, 0, 6, 90, 1, 5, 4, 0, 2, 5, 6, 3}, 12))
	f.Add(bytes.Repeat([]byte{3, 9, 250, 0, 7, 99, 9, 120, 3, 7, 6, 40, 10, 1, 4, 2}, 10))
	f.Fuzz(fuzzCache)
}

var fuzzRuns atomic.Int64

// fuzzSizes are the sizes a fuzz target draws its cache from: a budget of
// budget plus up to 15 budgetSteps, and for a shared pool (chosen by the
// first byte) an alignment of align shifted by up to alignShifts-1 and a
// capacity of pool plus up to 23 poolSteps.
type fuzzSizes struct {
	budget, budgetStep, maxBudget int
	align, alignShifts            int
	pool, poolStep                int
}

// newFuzzModel makes the model and its cache, on a pool of its own or a
// shared one, as ops and z say.
func newFuzzModel(t *testing.T, ops *fuzzops.Reader, z fuzzSizes) *model {
	if fuzzRuns.Add(1)%64 == 0 {
		// A closed cache's reservations are unmapped once it is
		// unreachable; thousands of caches a second outrun the GC's
		// pace and the kernel's limit on mappings.
		runtime.GC()
	}
	mode := ops.Byte()
	m := &model{t: t, vals: map[string][]byte{}, budget: z.budget + z.budgetStep*ops.Intn(16)}
	opts := &Options{MaxBudget: z.maxBudget}
	if mode%2 == 1 { // a shared pool, smaller than the cache's budget at times
		m.align = z.align << ops.Intn(z.alignShifts)
		p, err := pool.New(z.pool+z.poolStep*ops.Intn(24), &pool.Options{Alignment: m.align})
		if err != nil {
			t.Fatal(err)
		}
		m.p, opts.Pool = p, p
	} else {
		m.align = 8
	}
	c, err := New(m.budget, opts)
	if err != nil {
		t.Fatal(err)
	}
	m.c = c
	return m
}

func fuzzCache(t *testing.T, data []byte) {
	ops := fuzzops.New(data)
	m := newFuzzModel(t, ops, fuzzSizes{budget: 256, budgetStep: 64, maxBudget: 4096, align: 1, alignShifts: 5, pool: 512, poolStep: 64})
	key := func() []byte { n := ops.Intn(12); return []byte(strings.Repeat("k", 1+n%3) + strconv.Itoa(n)) }
	val := func() []byte { return bytes.Repeat([]byte{byte(ops.Byte())}, ops.Intn(m.budget/2+64)) }
	for ops.More() {
		op := ops.Intn(12)
		if trace {
			t.Logf("op %d (%d bytes left) stats %+v", op, ops.Len(), m.c.Stats())
		}
		switch op {
		case 0, 1:
			m.set(key(), val())
		case 2:
			m.get(key())
		case 3:
			m.has(key())
		case 4:
			m.del(key())
		case 5, 6:
			m.pin(key())
		case 7:
			m.release(ops.Byte())
		case 8:
			m.resize(ops.Byte()*16 - 64)
		case 9:
			m.commitForeign(ops.Byte() * 4)
		case 10:
			m.releaseForeign(ops.Byte())
		case 11:
			switch ops.Intn(3) { // bad input
			case 0:
				m.set(nil, val())
			case 1:
				m.pin(nil)
			default:
				m.del(nil)
			}
		}
		m.check()
	}
	m.closeAll()
}
