package cache

import (
	"testing"

	"github.com/offheap/offheap/internal/workload/lookup"
)

// The cache suite's speed cases, run by the offheap cache alone (the suite
// of `offheap bench` runs the same functions for every implementation).

const benchEntries = 1 << 17

// benchStore adapts a Cache to lookup.Store and lookup.Viewer.
type benchStore struct{ c *Cache }

func newBenchStore(entries int) (lookup.Store, error) {
	c, err := New(entries*(lookup.KeySize+lookup.ValueSize), nil)
	return benchStore{c}, err
}

func (s benchStore) Get(dst []byte, k *lookup.Key) ([]byte, bool) { return s.c.Get(dst, k.B) }
func (s benchStore) Set(k *lookup.Key, v []byte)                  { _ = s.c.Set(k.B, v) }
func (s benchStore) Close()                                       { _ = s.c.Close() }

func (s benchStore) View(k *lookup.Key) int {
	v, h, err := s.c.Pin(k.B)
	if err != nil {
		return -1
	}
	x := int(v[0])
	_ = h.Release()
	return x
}

func BenchmarkGet(b *testing.B)       { run(b, lookup.Get) }
func BenchmarkGetPinned(b *testing.B) { run(b, lookup.GetPinned) }
func BenchmarkSetEvict(b *testing.B)  { run(b, lookup.SetEvict) }
func BenchmarkMixP1(b *testing.B)     { run(b, mixAt(1)) }
func BenchmarkMixP2(b *testing.B)     { run(b, mixAt(2)) }

func mixAt(procs int) func(lookup.New, int) (lookup.Bench, error) {
	return func(f lookup.New, n int) (lookup.Bench, error) { return lookup.Mix(f, n, procs) }
}

func run(b *testing.B, setup func(lookup.New, int) (lookup.Bench, error)) {
	bm, err := setup(newBenchStore, benchEntries)
	if err != nil {
		b.Fatal(err)
	}
	defer bm.Close()
	bm.Run(b)
}
