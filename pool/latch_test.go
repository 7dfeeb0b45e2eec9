package pool

import (
	"bytes"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Regression tests from a second reading of the lock-free protocol. Read
// used to copy long segments under an internal latch that shared the count
// of the caller's latches: a stray Unlatch could take it (and Read could then
// return another segment's bytes), and Close could report ErrBusy with no
// latch of the caller's outstanding. Read and Commit now take no pin at all.

// selfBytes returns n bytes that name ref and n, so a copy of another
// segment, a torn copy or one of the wrong length is detected.
func selfBytes(ref Ref, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint64(ref)>>(8*(i%8))) ^ byte(i/8) ^ byte(n)
	}
	return b
}

func TestUnlatchWithoutLatchWhileReading(t *testing.T) {
	p := newT(t, 1<<20, nil)
	r := commitT(t, p, make([]byte, 5000)) // longer than Read's inlined path
	var stop atomic.Bool
	var readErrs atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			var dst []byte
			for !stop.Load() {
				var err error
				if dst, err = p.Read(r, dst[:0]); err != nil {
					readErrs.Add(1)
				}
			}
		})
	}
	wrong := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		if err := p.Unlatch(r); !errors.Is(err, ErrNotLatched) {
			wrong++
		}
		runtime.Gosched()
	}
	stop.Store(true)
	wg.Wait()
	if wrong > 0 || readErrs.Load() > 0 {
		t.Fatalf("Unlatch without a latch did not say ErrNotLatched %d times; Read failed %d times", wrong, readErrs.Load())
	}
}

// TestStrayUnlatchNeverCorruptsRead pairs a stray Unlatch and a legitimate
// Latch with compaction under a reader of a long segment: every successful
// Read must return exactly the segment's bytes.
func TestStrayUnlatchNeverCorruptsRead(t *testing.T) {
	p := newT(t, 16<<20, nil)
	const xLen = 1 << 20
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		var fillers []Ref
		for range 8 {
			fillers = append(fillers, commitT(t, p, make([]byte, 4096)))
		}
		x, v, err := p.Reserve(xLen)
		if err != nil {
			t.Fatal(err)
		}
		want := selfBytes(x, xLen)
		copy(v, want)
		if err := p.Unlatch(x); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var bad atomic.Bool
		var wg sync.WaitGroup
		wg.Go(func() {
			var dst []byte
			for !stop.Load() {
				var err error
				if dst, err = p.Read(x, dst[:0]); err == nil && !bytes.Equal(dst, want) {
					bad.Store(true)
				}
			}
		})
		wg.Go(func() {
			for !stop.Load() {
				_ = p.Unlatch(x) // a caller bug: must be ErrNotLatched and change nothing
				if _, err := p.Latch(x); err == nil {
					_ = p.Unlatch(x)
				}
			}
		})
		for _, f := range fillers {
			if err := p.Release(f); err != nil {
				t.Fatal(err)
			}
			p.Compact()
		}
		stop.Store(true)
		wg.Wait()
		if bad.Load() {
			t.Fatal("Read returned bytes that are not the segment's")
		}
		if err := p.Release(x); err != nil {
			t.Fatal(err)
		}
	}
	verifyT(t, p)
}

func TestCloseNotBusyWithoutLatches(t *testing.T) {
	for round := range 5 {
		p, err := New(4<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := p.Commit(make([]byte, 5000))
		if err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		var started atomic.Int32
		var wg sync.WaitGroup
		wg.Go(func() { // a reader of a long segment
			var dst []byte
			started.Add(1)
			for !stop.Load() {
				dst, _ = p.Read(r, dst[:0])
			}
		})
		wg.Go(func() { // a committer of long segments
			data := make([]byte, 64<<10) // long: copied under the lock
			started.Add(1)
			for !stop.Load() {
				c, err := p.Commit(data)
				if err != nil {
					return
				}
				_ = p.Release(c)
			}
		})
		for started.Load() < 2 {
			runtime.Gosched()
		}
		time.Sleep(time.Millisecond)
		err = p.Close()
		stop.Store(true)
		wg.Wait()
		if errors.Is(err, ErrBusy) {
			t.Fatalf("round %d: Close with no latch outstanding: %v", round, err)
		}
		if err != nil && !errors.Is(err, ErrLeaked) {
			t.Fatal(err)
		}
	}
}

// TestSlotRetiredAtLastGeneration proves a slot is never reused once its
// generation would wrap, so a stale Ref cannot name a later segment.
func TestSlotRetiredAtLastGeneration(t *testing.T) {
	p := newT(t, 1<<20, nil)
	r1 := commitT(t, p, []byte("first"))
	if err := p.Release(r1); err != nil {
		t.Fatal(err)
	}
	i := r1.index()
	s := p.slot(i)
	s.word = uint64(p.retiredGen()-1) | stateFree<<stateShift // as if reused 2^32-2 times
	last := commitT(t, p, []byte("last"))
	if last.index() != i || last.gen() != p.retiredGen()-1 {
		t.Fatalf("expected slot %d at its last generation, got %v", i, last)
	}
	if err := p.Release(last); err != nil {
		t.Fatal(err)
	}
	next := commitT(t, p, []byte("a later segment"))
	if next.index() == i {
		t.Fatalf("slot %d reused after its last generation: %v", i, next)
	}
	for _, stale := range []Ref{r1, last, makeRef(i, p.firstGen)} {
		if _, err := p.Read(stale, nil); !errors.Is(err, ErrUnknownRef) {
			t.Fatalf("stale %v: %v", stale, err)
		}
	}
	verifyT(t, p)
}
