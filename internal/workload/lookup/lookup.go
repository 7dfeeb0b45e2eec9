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
	traceLen = 1 << 20
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

// filled makes a store holding every key, sized for twice as many, so
// that none is evicted whatever the store's layout.
func filled(b *testing.B, newStore New, keys []Key) Store {
	s, err := newStore(2 * len(keys))
	if err != nil {
		b.Fatal(err)
	}
	v := Value()
	for i := range keys {
		s.Set(&keys[i], v)
	}
	return s
}

// Get returns the benchmark of copy Gets (hits) on a store holding n keys.
func Get(newStore New, n int) func(b *testing.B) {
	return func(b *testing.B) {
		keys, tr := Keys(n), Trace(n, 1)
		s := filled(b, newStore, keys)
		defer s.Close()
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
	}
}

// GetPinned returns the benchmark of zero-copy Gets (hits) on a store
// holding n keys; the store must be a Viewer.
func GetPinned(newStore New, n int) func(b *testing.B) {
	return func(b *testing.B) {
		keys, tr := Keys(n), Trace(n, 1)
		s := filled(b, newStore, keys)
		defer s.Close()
		v, ok := s.(Viewer)
		if !ok {
			b.Skip("no zero-copy read")
		}
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
	}
}

// SetEvict returns the benchmark of Sets on a store of n entries kept at
// capacity: each Set stores a key the store does not hold, cycling through
// 4n keys, so each evicts (or is refused by an admission policy).
func SetEvict(newStore New, n int) func(b *testing.B) {
	return func(b *testing.B) {
		keys := Keys(4 * n)
		s, err := newStore(n)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		v := Value()
		for i := range 2 * n {
			s.Set(&keys[i], v)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			s.Set(&keys[(2*n+i)%len(keys)], v)
		}
	}
}

// Mix returns the benchmark of a 90/10 Get/Set mix over n keys, by procs
// goroutines at GOMAXPROCS procs; ns/op is per operation.
func Mix(newStore New, n, procs int) func(b *testing.B) {
	return func(b *testing.B) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		keys := Keys(n)
		s := filled(b, newStore, keys)
		defer s.Close()
		v := Value()
		traces := make([][]int32, procs)
		for i := range traces {
			traces[i] = Trace(n, uint64(i+1))
		}
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
	}
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
