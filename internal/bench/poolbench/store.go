// Package poolbench is the pool suite of `offheap bench`: the segment pool
// against four other ways to keep 100-byte payloads, each behind Store, on
// workloads shared with the pool package's Go benchmarks.
package poolbench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/coocood/freecache"

	"github.com/offheap/offheap/pool"
)

// Impls are the implementations, offheap's first:
//   - offheap: pool.Pool;
//   - gomap-heap: a Go map of key to a heap-allocated copy, the design
//     Opteryx left (a Python dict of objects);
//   - gomap-meta: Go map metadata (key to offset, length, latches) over one
//     []byte, free holes in a slice searched first-fit, bump allocation at
//     the end: the obvious Go port of Opteryx's MemoryPool;
//   - fastcache (VictoriaMetrics) and freecache (coocood): off-GC-heap byte
//     caches doing the same commit, read and release work by key.
var Impls = []string{"offheap", "gomap-heap", "gomap-meta", "fastcache", "freecache"}

// PayloadSize is the bytes of every commit, as in Opteryx's benchmark.
const PayloadSize = 100

// ErrMissing is a read of a key the store does not hold.
var ErrMissing = errors.New("poolbench: key not found")

// Store is the work every implementation does: commit a payload under a key
// the workload chooses (stores that name segments themselves, like the
// pool, ignore it and return their own), read it back by copy, release it.
type Store interface {
	Commit(key uint64, data []byte) (uint64, error)
	Read(key uint64, dst []byte) ([]byte, error) // appends to dst
	Release(key uint64) error
	Close() error
}

// Latcher is a Store with pinned zero-copy views. fastcache and freecache
// have none.
type Latcher interface {
	Latch(key uint64) ([]byte, error)
	Unlatch(key uint64) error
}

// Open returns an empty store of impl with room for live payloads (and
// headroom for the workloads' own).
func Open(impl string, live int) (Store, error) {
	bytes := (live + 64<<10) * 128 // payloads rounded to 104 or 112 bytes, plus slack
	switch impl {
	case "offheap":
		p, err := pool.New(bytes, &pool.Options{Name: "poolbench"})
		return offheapStore{p}, err
	case "gomap-heap":
		return &heapStore{m: make(map[uint64]heapSeg)}, nil
	case "gomap-meta":
		return &metaStore{buf: make([]byte, bytes), m: make(map[uint64]metaSeg)}, nil
	case "fastcache":
		// Each of its 512 buckets is a ring that overwrites its oldest
		// entries when full: size it so nothing live is lost.
		return fastcacheStore{fastcache.New(4 * bytes)}, nil
	case "freecache":
		// Likewise 256 ring segments, which evict when full.
		return freecacheStore{freecache.NewCache(4 * bytes)}, nil
	}
	return nil, fmt.Errorf("poolbench: unknown impl %q (have %v)", impl, Impls)
}

// MemoryFor estimates the most memory a store of impl holding live payloads uses.
func MemoryFor(impl string, live int) int64 {
	per := int64(300) // payload, metadata and map overhead, generously
	if impl == "fastcache" || impl == "freecache" {
		per = 4 * 128 // sized four times over; freecache allocates it all
	}
	return int64(live+64<<10) * per
}

type offheapStore struct{ p *pool.Pool }

func (s offheapStore) Commit(_ uint64, data []byte) (uint64, error) {
	r, err := s.p.Commit(data)
	return uint64(r), err
}
func (s offheapStore) Read(k uint64, dst []byte) ([]byte, error) { return s.p.Read(pool.Ref(k), dst) }
func (s offheapStore) Release(k uint64) error                    { return s.p.Release(pool.Ref(k)) }
func (s offheapStore) Latch(k uint64) ([]byte, error)            { return s.p.Latch(pool.Ref(k)) }
func (s offheapStore) Unlatch(k uint64) error                    { return s.p.Unlatch(pool.Ref(k)) }

// Close frees the pool; benchmarks end with payloads live, which the checked
// build reports as a leak.
func (s offheapStore) Close() error {
	if err := s.p.Close(); err != nil && !errors.Is(err, pool.ErrLeaked) {
		return err
	}
	return nil
}

// heapStore is gomap-heap: every payload its own heap allocation.
type heapStore struct {
	mu sync.Mutex
	m  map[uint64]heapSeg
}

type heapSeg struct {
	b       []byte
	latches int
}

func (s *heapStore) Commit(k uint64, data []byte) (uint64, error) {
	b := make([]byte, len(data))
	copy(b, data)
	s.mu.Lock()
	s.m[k] = heapSeg{b: b}
	s.mu.Unlock()
	return k, nil
}

func (s *heapStore) Read(k uint64, dst []byte) ([]byte, error) {
	s.mu.Lock()
	e, ok := s.m[k]
	s.mu.Unlock()
	if !ok {
		return dst, ErrMissing
	}
	return append(dst, e.b...), nil // the bytes never change once committed
}

func (s *heapStore) Release(k uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok {
		return ErrMissing
	}
	delete(s.m, k)
	return nil
}

// Latch counts a latch and returns the slice itself: the garbage collector
// keeps it alive, so nothing needs pinning.
func (s *heapStore) Latch(k uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return nil, ErrMissing
	}
	e.latches++
	s.m[k] = e
	return e.b, nil
}

func (s *heapStore) Unlatch(k uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok || e.latches == 0 {
		return ErrMissing
	}
	e.latches--
	s.m[k] = e
	return nil
}

func (s *heapStore) Close() error { return nil }

// metaStore is gomap-meta: Opteryx's MemoryPool ported to Go as written,
// with a Go map for the metadata it moved into a C++ unordered_map.
type metaStore struct {
	mu    sync.Mutex
	buf   []byte
	top   int
	holes []extent // free space below top, first-fit
	m     map[uint64]metaSeg
}

type extent struct{ off, size int }

type metaSeg struct {
	off, n, latches int
}

func align8(n int) int { return (n + 7) &^ 7 }

func (s *metaStore) Commit(k uint64, data []byte) (uint64, error) {
	size := align8(len(data))
	s.mu.Lock()
	defer s.mu.Unlock()
	off, ok := s.place(size)
	if !ok {
		s.mergeHoles()
		if off, ok = s.place(size); !ok {
			return 0, errors.New("poolbench: gomap-meta full")
		}
	}
	copy(s.buf[off:], data)
	s.m[k] = metaSeg{off: off, n: len(data)}
	return k, nil
}

// place takes the first hole that fits, else bumps top.
func (s *metaStore) place(size int) (int, bool) {
	for i, h := range s.holes {
		if h.size < size {
			continue
		}
		if h.size == size {
			s.holes = slices.Delete(s.holes, i, i+1)
		} else {
			s.holes[i] = extent{h.off + size, h.size - size}
		}
		return h.off, true
	}
	if s.top+size > len(s.buf) {
		return 0, false
	}
	s.top += size
	return s.top - size, true
}

// mergeHoles sorts the holes and joins neighbours (Opteryx's level-1
// compaction), giving back to top a hole that ends there.
func (s *metaStore) mergeHoles() {
	slices.SortFunc(s.holes, func(a, b extent) int { return a.off - b.off })
	out := s.holes[:0]
	for _, h := range s.holes {
		if n := len(out); n > 0 && out[n-1].off+out[n-1].size == h.off {
			out[n-1].size += h.size
		} else {
			out = append(out, h)
		}
	}
	if n := len(out); n > 0 && out[n-1].off+out[n-1].size == s.top {
		s.top = out[n-1].off
		out = out[:n-1]
	}
	s.holes = out
}

func (s *metaStore) Read(k uint64, dst []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return dst, ErrMissing
	}
	return append(dst, s.buf[e.off:e.off+e.n]...), nil
}

func (s *metaStore) Release(k uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return ErrMissing
	}
	delete(s.m, k)
	if size := align8(e.n); e.off+size == s.top {
		s.top = e.off
	} else {
		s.holes = append(s.holes, extent{e.off, size})
	}
	return nil
}

func (s *metaStore) Latch(k uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return nil, ErrMissing
	}
	e.latches++
	s.m[k] = e
	return s.buf[e.off : e.off+e.n], nil
}

func (s *metaStore) Unlatch(k uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok || e.latches == 0 {
		return ErrMissing
	}
	e.latches--
	s.m[k] = e
	return nil
}

func (s *metaStore) Close() error { return nil }

// keyBytes encodes k as the 8-byte key the caches take.
func keyBytes(k uint64) [8]byte {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], k)
	return b
}

type fastcacheStore struct{ c *fastcache.Cache }

func (s fastcacheStore) Commit(k uint64, data []byte) (uint64, error) {
	kb := keyBytes(k)
	s.c.Set(kb[:], data)
	return k, nil
}

func (s fastcacheStore) Read(k uint64, dst []byte) ([]byte, error) {
	kb := keyBytes(k)
	dst, ok := s.c.HasGet(dst, kb[:])
	if !ok {
		return dst, ErrMissing
	}
	return dst, nil
}

func (s fastcacheStore) Release(k uint64) error {
	kb := keyBytes(k)
	s.c.Del(kb[:])
	return nil
}

func (s fastcacheStore) Close() error { s.c.Reset(); return nil }

type freecacheStore struct{ c *freecache.Cache }

func (s freecacheStore) Commit(k uint64, data []byte) (uint64, error) {
	kb := keyBytes(k)
	return k, s.c.Set(kb[:], data, 0)
}

func (s freecacheStore) Read(k uint64, dst []byte) ([]byte, error) {
	kb := keyBytes(k)
	v, err := s.c.GetWithBuf(kb[:], dst[len(dst):cap(dst)])
	if err != nil {
		return dst, ErrMissing
	}
	if len(v) > 0 && cap(dst)-len(dst) >= len(v) {
		return dst[:len(dst)+len(v)], nil // copied in place
	}
	return append(dst, v...), nil
}

func (s freecacheStore) Release(k uint64) error {
	kb := keyBytes(k)
	if !s.c.Del(kb[:]) {
		return ErrMissing
	}
	return nil
}

func (s freecacheStore) Close() error { s.c.Clear(); return nil }
