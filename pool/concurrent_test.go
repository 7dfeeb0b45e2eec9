package pool

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stamped returns a segment whose first 8 bytes name it and whose rest
// derives from that name, so any reader can check it whole.
func stamped(id uint64, n int) []byte {
	b := make([]byte, max(n, 8))
	binary.LittleEndian.PutUint64(b, id)
	for i := 8; i < len(b); i++ {
		b[i] = byte(id>>(i%8*8)) ^ byte(i)
	}
	return b
}

func checkStamped(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	id := binary.LittleEndian.Uint64(b)
	for i := 8; i < len(b); i++ {
		if b[i] != byte(id>>(i%8*8))^byte(i) {
			return false
		}
	}
	return true
}

// TestConcurrent runs 32 goroutines committing, reading, latching,
// releasing and handing refs to each other through a shared table, while
// another compacts, on a pool small enough to fill, compact and grow. Every
// byte read must be whole, and since exactly one of several racing releases
// of a ref succeeds, successful releases must add up to commits.
func TestConcurrent(t *testing.T) {
	const workers, shared = 32, 64
	ops := 600
	if testing.Short() {
		ops = 100
	}
	p := newT(t, 64<<10, &Options{MaxCapacity: 1 << 20, Alignment: 16})
	var table [shared]atomic.Uint64 // refs any worker may read, latch or release
	var releases atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, args...)
		}
	}
	// release counts successful releases; racing ones fail with ErrUnknownRef.
	release := func(r Ref) {
		if err := p.Release(r); err == nil {
			releases.Add(1)
		} else if !errors.Is(err, ErrUnknownRef) {
			fail("release %v: %v", r, err)
		}
	}
	stop := make(chan struct{})
	go func() { // the compactor
		for {
			select {
			case <-stop:
				return
			default:
				p.Compact()
				if st := p.Stats(); st.Used+st.Free != st.Capacity {
					fail("stats: Used %d + Free %d != Capacity %d", st.Used, st.Free, st.Capacity)
				}
				time.Sleep(time.Microsecond) // the lock is not fair: leave the workers room
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var mine []Ref
			var dst []byte
			for op := range ops {
				switch rng.IntN(6) {
				case 0, 1: // commit
					r, err := p.Commit(stamped(uint64(w)<<32|uint64(op), 8+rng.IntN(300)))
					if errors.Is(err, ErrFull) {
						continue
					}
					if err != nil {
						fail("commit: %v", err)
						return
					}
					mine = append(mine, r)
				case 2: // read and release one of mine, or share it
					if len(mine) == 0 {
						continue
					}
					k := rng.IntN(len(mine))
					r := mine[k]
					mine = append(mine[:k], mine[k+1:]...)
					var err error
					if dst, err = p.Read(r, dst[:0]); err != nil || !checkStamped(dst) {
						fail("read own %v: %v, whole %v", r, err, checkStamped(dst))
						return
					}
					if old := Ref(table[rng.IntN(shared)].Swap(uint64(r))); old != 0 {
						release(old) // someone may have released it already
					}
				case 3: // read a shared ref: whole, or already released
					r := Ref(table[rng.IntN(shared)].Load())
					var err error
					dst, err = p.Read(r, dst[:0])
					if err == nil && !checkStamped(dst) {
						fail("read shared %v: torn", r)
						return
					}
					if err != nil && !errors.Is(err, ErrUnknownRef) {
						fail("read shared %v: %v", r, err)
						return
					}
				case 4: // latch a shared ref across a compaction
					r := Ref(table[rng.IntN(shared)].Load())
					v, err := p.Latch(r)
					if err != nil {
						if !errors.Is(err, ErrUnknownRef) {
							fail("latch %v: %v", r, err)
						}
						continue
					}
					before, _ := p.Info(r) // may fail: someone released it
					p.Compact()
					after, err2 := p.Info(r)
					if !checkStamped(v) || err2 == nil && before.Offset != after.Offset && before.Len > 0 {
						fail("latched %v moved or changed: %+v -> %+v", r, before, after)
						return
					}
					if err := p.Unlatch(r); err != nil {
						fail("unlatch %v: %v", r, err)
						return
					}
				case 5: // release a shared ref, racing with others who may
					release(Ref(table[rng.IntN(shared)].Load()))
				}
			}
			for _, r := range mine {
				if err := p.Release(r); err != nil {
					fail("release own %v: %v", r, err)
					return
				}
				releases.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	for i := range table {
		release(Ref(table[i].Swap(0)))
	}
	st := p.Stats()
	if st.UsedSegments != 0 || st.Used != 0 || st.PendingReleases != 0 {
		t.Fatalf("after every release: %+v", st)
	}
	if int64(st.Commits) != releases.Load() {
		t.Fatalf("%d commits but %d successful releases", st.Commits, releases.Load())
	}
	verifyT(t, p)
}

// TestConcurrentReadersDuringWrites hammers one segment with lock-free
// reads and latches while writers churn the pool around it, the case the
// seqlock validation exists for.
func TestConcurrentReadersDuringWrites(t *testing.T) {
	p := newT(t, 1<<20, nil)
	want := stamped(42, 4000)
	r := commitT(t, p, want)
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for w := range 4 {
		writers.Go(func() { // commit and release around r, and compact
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if x, err := p.Commit(stamped(uint64(w), 100+i%500)); err == nil {
					_ = p.Release(x)
				}
				if i%64 == 0 {
					p.Compact()
				}
			}
		})
	}
	for range 4 {
		readers.Go(func() {
			var dst []byte
			for range 3000 {
				var err error
				if dst, err = p.Read(r, dst[:0]); err != nil || string(dst) != string(want) {
					t.Errorf("read: %v", err)
					return
				}
				v, err := p.Latch(r)
				if err != nil || string(v) != string(want) {
					t.Errorf("latch: %v", err)
					return
				}
				if err := p.Unlatch(r); err != nil {
					t.Errorf("unlatch: %v", err)
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	writers.Wait()
}
