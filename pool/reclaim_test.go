package pool

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/offheap/offheap/vmem"
)

// holder is a test reclaimer: it keeps segments and releases the unlatched
// ones, oldest first, when asked.
type holder struct {
	p     *Pool
	mu    sync.Mutex
	refs  []Ref
	calls atomic.Int64
	hook  func() // runs at the start of each Reclaim, if set
}

func (h *holder) commit(t testing.TB, n int) Ref {
	t.Helper()
	r := commitT(t, h.p, pattern(n, n))
	h.mu.Lock()
	h.refs = append(h.refs, r)
	h.mu.Unlock()
	return r
}

func (h *holder) Reclaim(need int) int {
	h.calls.Add(1)
	if h.hook != nil {
		h.hook()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	freed := 0
	kept := h.refs[:0]
	for _, r := range h.refs {
		if freed >= need {
			kept = append(kept, r)
			continue
		}
		seg, err := h.p.Info(r) // takes the pool's lock: it must not be held
		if err != nil || seg.Latches > 0 {
			kept = append(kept, r)
			continue
		}
		if h.p.Release(r) == nil {
			freed += int(h.p.size(uint64(seg.Len)))
		}
	}
	h.refs = kept
	return freed
}

func TestReclaimerGivesWayBeforeFull(t *testing.T) {
	p := newT(t, 1024, nil)
	h := &holder{p: p}
	if err := p.AddReclaimer(h); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		h.commit(t, 128)
	}
	// The pool is full: another user's commit makes the holder give way.
	r := commitT(t, p, pattern(200, 1))
	if h.calls.Load() == 0 {
		t.Fatal("the reclaimer was not asked")
	}
	if got := readT(t, p, r); string(got) != string(pattern(200, 1)) {
		t.Fatal("commit after reclaim holds the wrong bytes")
	}
	st := p.Stats()
	if st.FailedCommits != 0 || st.Grows != 0 {
		t.Fatalf("stats %+v: want no failed commit and no growth", st)
	}
	verifyT(t, p)
}

func TestReclaimerComesBeforeGrowth(t *testing.T) {
	p := newT(t, 1024, &Options{MaxCapacity: 4096})
	h := &holder{p: p}
	_ = p.AddReclaimer(h)
	for range 8 {
		h.commit(t, 128)
	}
	commitT(t, p, pattern(256, 2))
	if st := p.Stats(); st.Grows != 0 || st.Capacity != 1024 {
		t.Fatalf("pool grew (%+v) while a reclaimer could give way", st)
	}
	// With nothing left to give, the pool grows.
	p.RemoveReclaimer(h)
	p.RemoveReclaimer(h) // not registered: nothing happens
	calls := h.calls.Load()
	commitT(t, p, pattern(1024, 3))
	if h.calls.Load() != calls {
		t.Fatal("a removed reclaimer was asked")
	}
	if st := p.Stats(); st.Grows == 0 {
		t.Fatalf("pool did not grow: %+v", st)
	}
}

func TestReclaimerNeverGivesLatched(t *testing.T) {
	p := newT(t, 1024, nil)
	h := &holder{p: p}
	_ = p.AddReclaimer(h)
	var latched []Ref
	for i := range 8 {
		r := h.commit(t, 128)
		if i%2 == 0 {
			if _, err := p.Latch(r); err != nil {
				t.Fatal(err)
			}
			latched = append(latched, r)
		}
	}
	// 512 bytes are unlatched but never contiguous: the commit fails after
	// the reclaimer has given all it can, and the latched segments stay.
	_, err := p.Commit(pattern(600, 1))
	wantErr(t, err, ErrFull)
	for _, r := range latched {
		if s := infoT(t, p, r); s.Latches != 1 {
			t.Fatalf("latched %v: %+v", r, s)
		}
		_ = p.Unlatch(r)
	}
	verifyT(t, p)
}

func TestReclaimerRunsWithoutTheLock(t *testing.T) {
	p := newT(t, 1024, nil)
	h := &holder{p: p}
	h.hook = func() { _ = p.Stats() } // would deadlock if the lock were held
	_ = p.AddReclaimer(h)
	for range 8 {
		h.commit(t, 128)
	}
	if _, _, err := p.Reserve(128); err != nil {
		t.Fatal(err)
	}
}

func TestReclaimerClosesPool(t *testing.T) {
	p := newT(t, 1024, nil)
	h := &holder{p: p}
	_ = p.AddReclaimer(h)
	for range 8 {
		h.commit(t, 128)
	}
	var closeErr error
	h.hook = func() {
		h.mu.Lock()
		for _, r := range h.refs {
			_ = p.Release(r)
		}
		h.refs = nil
		h.mu.Unlock()
		closeErr = p.Close()
	}
	_, err := p.Commit(pattern(300, 1))
	wantErr(t, err, ErrClosed)
	if closeErr != nil {
		t.Fatalf("close in reclaimer: %v", closeErr)
	}
	if err := p.AddReclaimer(h); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddReclaimer after Close: %v", err)
	}
}

func TestReclaimConcurrentCommits(t *testing.T) {
	p := newT(t, 64<<10, nil)
	h := &holder{p: p}
	_ = p.AddReclaimer(h)
	var wg sync.WaitGroup
	var fails atomic.Int64
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				n := 64 + (g*131+i*17)%900
				r, err := p.Commit(pattern(n, i))
				if err != nil {
					fails.Add(1)
					continue
				}
				if i%3 == 0 {
					_ = p.Release(r)
					continue
				}
				h.mu.Lock()
				h.refs = append(h.refs, r)
				h.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fails.Load() != 0 {
		t.Fatalf("%d commits failed with a reclaimer holding the space", fails.Load())
	}
	verifyT(t, p)
}

func TestTryReserveTakesNoSlowPath(t *testing.T) {
	p := newT(t, 1024, &Options{MaxCapacity: 4096})
	var refs []Ref
	for range 8 {
		r, b, err := p.TryReserve(128)
		if err != nil || len(b) != 128 {
			t.Fatalf("try reserve: %v, %d bytes", err, len(b))
		}
		copy(b, pattern(128, 1))
		refs = append(refs, r)
	}
	for i := 0; i < 8; i += 2 {
		_ = p.Unlatch(refs[i])
		_ = p.Release(refs[i])
	}
	_, _, err := p.TryReserve(256) // fragmented: 512 bytes free in 128-byte holes
	wantErr(t, err, ErrFull)
	st := p.Stats()
	if st.Compactions != 0 || st.Grows != 0 || st.FailedCommits != 1 {
		t.Fatalf("TryReserve took the slow path: %+v", st)
	}
	if _, _, err := p.TryReserve(100); err != nil { // fits a hole
		t.Fatal(err)
	}
	_, _, err = p.TryReserve(-1)
	wantErr(t, err, ErrInvalid)
	if _, err := p.Read(refs[1], nil); !errors.Is(err, ErrBusy) {
		t.Fatalf("a reserved segment must be unpublished until Unlatch: %v", err)
	}
	for i := 1; i < 8; i += 2 {
		_ = p.Unlatch(refs[i])
	}
	verifyT(t, p)
}

func TestResize(t *testing.T) {
	ps := vmem.PageSize()
	p := newT(t, 16*ps, &Options{MaxCapacity: 64 * ps})
	if err := p.Resize(32 * ps); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Capacity != 32*ps || st.Free != 32*ps {
		t.Fatalf("grown: %+v", st)
	}
	var refs []Ref
	for i := range 31 {
		refs = append(refs, commitT(t, p, pattern(ps, i)))
	}
	res, _ := p.data.Resident()
	// Keep every fourth segment, one of them latched near the top: the one
	// after it slides down behind it, so the capacity stops at 26 pages.
	var kept []Ref
	for i, r := range refs {
		if i%4 == 0 {
			kept = append(kept, r)
			continue
		}
		_ = p.Release(r)
	}
	if _, err := p.Latch(kept[6]); err != nil {
		t.Fatal(err)
	}
	err := p.Resize(4 * ps)
	wantErr(t, err, ErrBusy)
	if st := p.Stats(); st.Capacity != 26*ps || st.Used != 8*ps {
		t.Fatalf("after a blocked shrink: %+v", st)
	}
	if after, _ := p.data.Resident(); after > res-20*ps {
		t.Fatalf("resident %d bytes before shrinking, %d after: pages not given back", res, after)
	}
	_ = p.Unlatch(kept[6])
	if err := p.Resize(8 * ps); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Capacity != 8*ps || st.Free != 0 {
		t.Fatalf("after shrinking: %+v", st)
	}
	for i, r := range kept {
		if got := readT(t, p, r); string(got) != string(pattern(ps, i*4)) {
			t.Fatalf("segment %d changed across Resize", i)
		}
	}
	// Commits grow the pool again past the shrunk capacity, into released pages.
	r := commitT(t, p, pattern(3*ps, 99))
	if got := readT(t, p, r); string(got) != string(pattern(3*ps, 99)) {
		t.Fatal("commit into released pages")
	}
	for _, bad := range []int{0, -1, 65 * ps} {
		if err := p.Resize(bad); err == nil {
			t.Fatalf("Resize(%d) succeeded", bad)
		}
	}
	verifyT(t, p)
}

func TestStatsMetaBytes(t *testing.T) {
	p := newT(t, 1<<20, nil)
	before := p.Stats().MetaBytes
	for i := range 5000 {
		commitT(t, p, pattern(8, i))
	}
	if after := p.Stats().MetaBytes; before <= 0 || after <= before || after < 5000*slotSize {
		t.Fatalf("MetaBytes %d with no segments, %d with 5000", before, after)
	}
}

func TestStatsAlignment(t *testing.T) {
	for _, a := range []int{0, 1, 64} {
		p := newT(t, 4096, &Options{Alignment: a})
		want := a
		if a == 0 {
			want = defaultAlignment
		}
		if got := p.Stats().Alignment; got != want {
			t.Fatalf("Alignment %d: Stats says %d", a, got)
		}
	}
}
