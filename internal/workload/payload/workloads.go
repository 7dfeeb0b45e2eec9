// The workloads, as Go benchmark functions over a Store, shared by the
// pool suite of `offheap bench` and by the pool package's `go test -bench`.

package payload

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// payload is what every commit copies in.
var payload = func() []byte {
	b := make([]byte, PayloadSize)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// LiveBatch is how many timed commits CommitLive makes before it releases
// them, untimed, to stay near n live: a store for NewLive(s, n) needs room
// for n+LiveBatch payloads.
const LiveBatch = 1000

// Key spaces, so that the caches and maps never see a live key twice.
const (
	keyCycle    = 1 << 40
	keyLive     = 2 << 40
	keyParallel = 1 << 48 // plus the goroutine's number times keyParallel
)

// Live is a store holding n live payloads, for CommitLive.
type Live struct {
	s     Store
	n     int
	batch []uint64
	key   uint64
}

// NewLive commits n payloads into the empty store s, then one batch that it
// releases, so the memory the timed commits use is warm. It closes s if it
// fails.
func NewLive(s Store, n int) (*Live, error) {
	l := &Live{s: s, n: n, key: keyLive, batch: make([]uint64, 0, LiveBatch)}
	for range n {
		if _, err := l.commit(); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("payload: fill to %d: %w", n, err)
		}
	}
	for range LiveBatch {
		k, err := l.commit()
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		l.batch = append(l.batch, k)
	}
	if err := l.releaseBatch(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return l, nil
}

func (l *Live) commit() (uint64, error) {
	l.key++
	return l.s.Commit(l.key, payload)
}

// releaseBatch releases the batch, newest first.
func (l *Live) releaseBatch() error {
	for i := len(l.batch) - 1; i >= 0; i-- {
		if err := l.s.Release(l.batch[i]); err != nil {
			return err
		}
	}
	l.batch = l.batch[:0]
	return nil
}

// Close closes the store.
func (l *Live) Close() error { return l.s.Close() }

// CommitLive times commits into a store holding n live payloads: b.N
// commits in batches of LiveBatch, each batch released with the timer
// stopped, so the store holds n to n+LiveBatch payloads throughout and
// ns/op is the cost of one commit at that size.
func (l *Live) CommitLive(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(PayloadSize)
	for range b.N {
		if len(l.batch) == LiveBatch {
			b.StopTimer()
			if err := l.releaseBatch(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		k, err := l.commit()
		if err != nil {
			b.Fatal(err)
		}
		l.batch = append(l.batch, k)
	}
	b.StopTimer()
	if err := l.releaseBatch(); err != nil {
		b.Fatal(err)
	}
}

// CycleCopy times Opteryx's hot loop: commit a payload, read it back by
// copy, release it.
func CycleCopy(s Store) func(*testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(PayloadSize)
		dst := make([]byte, 0, PayloadSize)
		key := uint64(keyCycle)
		for range b.N {
			key++
			k, err := s.Commit(key, payload)
			if err != nil {
				b.Fatal(err)
			}
			if dst, err = s.Read(k, dst[:0]); err != nil {
				b.Fatal(err)
			}
			if err := s.Release(k); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// CycleLatch times commit, latch (a zero-copy view), unlatch, release.
func CycleLatch(s Latcher) func(*testing.B) {
	st := s.(Store)
	return func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(PayloadSize)
		key := uint64(keyCycle)
		for range b.N {
			key++
			k, err := st.Commit(key, payload)
			if err != nil {
				b.Fatal(err)
			}
			v, err := s.Latch(k)
			if err != nil || len(v) != PayloadSize {
				b.Fatal(err)
			}
			if err := s.Unlatch(k); err != nil {
				b.Fatal(err)
			}
			if err := st.Release(k); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// Shared is a store holding payloads any goroutine may read, for Parallel.
type Shared struct {
	s    Store
	keys []uint64
	gid  atomic.Uint64
}

// SharedLive is how many payloads Parallel's readers choose from.
const SharedLive = 10000

// NewShared commits SharedLive payloads into the empty store s. It closes s
// if it fails.
func NewShared(s Store) (*Shared, error) {
	sh := &Shared{s: s}
	for i := range SharedLive {
		k, err := s.Commit(uint64(i+1), payload)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		sh.keys = append(sh.keys, k)
	}
	return sh, nil
}

// Close closes the store.
func (sh *Shared) Close() error { return sh.s.Close() }

// ringSize is how many payloads of its own a Parallel goroutine keeps.
const ringSize = 64

// Parallel times a read-heavy mix, as a read cache with a 97% hit rate sees,
// from GOMAXPROCS goroutines (RunParallel): per 64 operations, 62 copy reads
// of a random shared payload, one commit and one release of the goroutine's
// own. ns/op is wall time per operation, so it halves when two CPUs do the
// work of one. Reads of the pool scale; its commits and releases share one
// allocator, whose cache lines then move between CPUs, so with more writes
// the pool scales less (at one write in 16 operations, not at all).
func (sh *Shared) Parallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var ring [ringSize]uint64
		head, n := 0, 0
		key := (sh.gid.Add(1)) * keyParallel
		rng := key | 1
		dst := make([]byte, 0, PayloadSize)
		var err error
		for pb.Next() {
			rng ^= rng << 13 // xorshift64
			rng ^= rng >> 7
			rng ^= rng << 17
			switch rng & 63 {
			case 0:
				if n == ringSize {
					break
				}
				key++
				if ring[(head+n)%ringSize], err = sh.s.Commit(key, payload); err != nil {
					b.Error(err)
					return
				}
				n++
			case 1:
				if n == 0 {
					break
				}
				if err := sh.s.Release(ring[head]); err != nil {
					b.Error(err)
					return
				}
				head, n = (head+1)%ringSize, n-1
			default:
				if dst, err = sh.s.Read(sh.keys[(rng>>8)%SharedLive], dst[:0]); err != nil {
					b.Error(err)
					return
				}
			}
		}
		for ; n > 0; n-- {
			_ = sh.s.Release(ring[head])
			head = (head + 1) % ringSize
		}
	})
}

// ParallelReads times copy reads alone of random shared payloads from
// GOMAXPROCS goroutines: the part of Parallel that needs no allocator.
func (sh *Shared) ParallelReads(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		rng := sh.gid.Add(1)*keyParallel | 1
		dst := make([]byte, 0, PayloadSize)
		var err error
		for pb.Next() {
			rng ^= rng << 13 // xorshift64
			rng ^= rng >> 7
			rng ^= rng << 17
			if dst, err = sh.s.Read(sh.keys[(rng>>8)%SharedLive], dst[:0]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
