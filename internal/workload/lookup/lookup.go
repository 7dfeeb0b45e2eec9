// Package lookup is the cache suite's speed workloads as Go benchmark
// functions: copy Gets, zero-copy (pinned) Gets, Sets at capacity and a
// 90/10 Get/Set mix, over 100-byte values under 16-byte keys drawn from a
// zipf distribution. They run any Store: the cache package's Go benchmarks
// run offheap's, and the cache suite of `offheap bench` runs every
// implementation through the same functions.
package lookup

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

// Sizes of the workload.
const (
	KeySize   = 16
	ValueSize = 100
	// traceLen is the length of each precomputed trace of key indices; a
	// power of two.
	traceLen = 1 << 18
	// zipfS is the zipf exponent of the key distribution.
	zipfS = 1.01
)

// Key is one key, as bytes and as a string, so each implementation uses
// its own kind without converting (and allocating) in the timed loop.
type Key struct {
	B []byte
	S string
}

// Store is a cache under test.
type Store interface {
	// Get appends key k's value to dst; ok is false on a miss.
	Get(dst []byte, k *Key) (v []byte, ok bool)
	// Set stores v under k (the store may evict, or refuse).
	Set(k *Key, v []byte)
	Close()
}

// Viewer is a Store that reads values in place: View looks k up, reads
// the value without copying it, and lets go of it (for offheap: Pin, read,
// Release); it returns the value's first byte, or -1 on a miss.
type Viewer interface {
	View(k *Key) int
}

// New makes a Store that holds up to entries entries of KeySize+ValueSize
// bytes (a store sized in bytes takes entries*(KeySize+ValueSize)).
type New func(entries int) (Store, error)

// Keys returns n keys.
func Keys(n int) []Key {
	keys := make([]Key, n)
	for i := range keys {
		s := fmt.Sprintf("k%0*d", KeySize-1, i)
		keys[i] = Key{B: []byte(s), S: s}
	}
	return keys
}

// Trace returns key indices below n drawn from a zipf distribution, the
// same for the same seed.
func Trace(n int, seed uint64) []int32 {
	z := rand.NewZipf(rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)), zipfS, 1, uint64(n-1))
	t := make([]int32, traceLen)
	for i := range t {
		t[i] = int32(z.Uint64())
	}
	return t
}

// Value returns a value of ValueSize bytes.
func Value() []byte {
	v := make([]byte, ValueSize)
	for i := range v {
		v[i] = byte(i + 1)
	}
	return v
}

// Bench is one speed case set up for one store: Run is the Go benchmark
// function (testing.Benchmark may call it several times, with growing b.N,
// and it reuses the store), Close frees the store.
type Bench struct {
	Run   func(b *testing.B)
	Close func()
}

// filled makes a store holding every key, sized for twice as many, so
// that none is evicted whatever the store's layout.
func filled(newStore New, keys []Key) (Store, error) {
	s, err := newStore(2 * len(keys))
	if err != nil {
		return nil, err
	}
	v := Value()
	for i := range keys {
		s.Set(&keys[i], v)
	}
	wait(s)
	return s, nil
}

// wait lets a store that applies Sets later (ristretto buffers them) catch up.
func wait(s Store) {
	if w, ok := s.(interface{ Wait() }); ok {
		w.Wait()
	}
}

// Get sets up copy Gets (hits) on a store holding n keys.
func Get(newStore New, n int) (Bench, error) {
	keys, tr := Keys(n), Trace(n, 1)
	s, err := filled(newStore, keys)
	if err != nil {
		return Bench{}, err
	}
	return Bench{Close: s.Close, Run: func(b *testing.B) {
		buf := make([]byte, 0, ValueSize)
		misses := 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var ok bool
			if buf, ok = s.Get(buf[:0], &keys[tr[i&(traceLen-1)]]); !ok {
				misses++
			}
		}
		b.StopTimer()
		reportMisses(b, misses)
	}}, nil
}

// GetPinned sets up zero-copy Gets (hits) on a store holding n keys; the
// store must be a Viewer.
func GetPinned(newStore New, n int) (Bench, error) {
	keys, tr := Keys(n), Trace(n, 1)
	s, err := filled(newStore, keys)
	if err != nil {
		return Bench{}, err
	}
	v, ok := s.(Viewer)
	if !ok {
		s.Close()
		return Bench{}, fmt.Errorf("lookup: %T has no zero-copy read", s)
	}
	return Bench{Close: s.Close, Run: func(b *testing.B) {
		misses, sum := 0, 0
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			x := v.View(&keys[tr[i&(traceLen-1)]])
			if x < 0 {
				misses++
			}
			sum += x
		}
		b.StopTimer()
		reportMisses(b, misses)
		Sink.Add(int64(sum))
	}}, nil
}

// SetEvict sets up Sets on a store of n entries kept at capacity: each Set
// stores a key the store does not hold, cycling through 4n keys, so each
// evicts (or is refused by an admission policy).
func SetEvict(newStore New, n int) (Bench, error) {
	keys := Keys(4 * n)
	s, err := newStore(n)
	if err != nil {
		return Bench{}, err
	}
	v := Value()
	for i := range 2 * n {
		s.Set(&keys[i], v)
	}
	wait(s)
	next := 2 * n
	return Bench{Close: s.Close, Run: func(b *testing.B) {
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			s.Set(&keys[next], v)
			if next++; next == len(keys) {
				next = 0
			}
		}
	}}, nil
}

// Mix sets up a 90/10 Get/Set mix over n keys, by procs goroutines at
// GOMAXPROCS procs (set while the benchmark runs); ns/op is per operation.
func Mix(newStore New, n, procs int) (Bench, error) {
	keys := Keys(n)
	s, err := filled(newStore, keys)
	if err != nil {
		return Bench{}, err
	}
	v := Value()
	traces := make([][]int32, procs)
	for i := range traces {
		traces[i] = Trace(n, uint64(i+1))
	}
	return Bench{Close: s.Close, Run: func(b *testing.B) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		var next atomic.Int32
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			tr := traces[int(next.Add(1)-1)%len(traces)]
			buf := make([]byte, 0, ValueSize)
			for i := 0; pb.Next(); i++ {
				k := &keys[tr[i&(traceLen-1)]]
				if i%10 == 9 {
					s.Set(k, v)
				} else {
					buf, _ = s.Get(buf[:0], k)
				}
			}
		})
	}}, nil
}

// Sink keeps results alive so the compiler cannot drop the work.
var Sink atomic.Int64

// reportMisses reports the share of lookups that missed, if any did: a
// speed case meant to hit must not be read as one if the store dropped keys.
func reportMisses(b *testing.B, misses int) {
	if misses > 0 {
		b.ReportMetric(float64(misses)/float64(b.N), "misses/op")
	}
}
