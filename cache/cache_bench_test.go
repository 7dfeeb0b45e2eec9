package cache

import (
	"testing"

	"github.com/offheap/offheap/internal/workload/lookup"
)

// The cache suite's speed cases, run by the offheap cache alone (the suite
// of `offheap bench` runs the same functions for every implementation).

const benchEntries = 1 << 17

// store adapts a Cache to lookup.Store and lookup.Viewer.
type store struct{ c *Cache }

func newStore(entries int) (lookup.Store, error) {
	c, err := New(entries*(lookup.KeySize+lookup.ValueSize), nil)
	return store{c}, err
}

func (s store) Get(dst []byte, k *lookup.Key) ([]byte, bool) { return s.c.Get(dst, k.B) }
func (s store) Set(k *lookup.Key, v []byte)                  { _ = s.c.Set(k.B, v) }
func (s store) Close()                                       { _ = s.c.Close() }

func (s store) View(k *lookup.Key) int {
	v, h, err := s.c.Pin(k.B)
	if err != nil {
		return -1
	}
	x := int(v[0])
	_ = h.Release()
	return x
}

func BenchmarkGet(b *testing.B)       { lookup.Get(newStore, benchEntries)(b) }
func BenchmarkGetPinned(b *testing.B) { lookup.GetPinned(newStore, benchEntries)(b) }
func BenchmarkSetEvict(b *testing.B)  { lookup.SetEvict(newStore, benchEntries)(b) }
func BenchmarkMixP1(b *testing.B)     { lookup.Mix(newStore, benchEntries, 1)(b) }
func BenchmarkMixP2(b *testing.B)     { lookup.Mix(newStore, benchEntries, 2)(b) }
