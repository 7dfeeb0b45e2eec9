// Package payload is the workload of keeping 100-byte payloads, Opteryx's
// MemoryPool benchmark and more: the segment pool and two Go-map designs,
// each behind Store, timed by Go benchmark functions that the pool package's
// Go benchmarks and the pool suite of `offheap bench` share (the suite adds
// third-party stores behind the same interface).
package payload

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/offheap/offheap/pool"
)

// Impls are the implementations Open knows, offheap's first:
//   - offheap: pool.Pool;
//   - gomap-heap: a Go map of key to a heap-allocated copy, the design
//     Opteryx left (a Python dict of objects);
//   - gomap-meta: Go map metadata (key to offset, length, latches) over one
//     []byte, free holes in a slice searched first-fit, bump allocation at
//     the end: the obvious Go port of Opteryx's MemoryPool.
var Impls = []string{"offheap", "gomap-heap", "gomap-meta"}

// PayloadSize is the bytes of every commit, as in Opteryx's benchmark.
const PayloadSize = 100

// ErrMissing is a read of a key the store does not hold.
var ErrMissing = errors.New("key not found")

// Store is the work every implementation does: commit a payload under a key
// the workload chooses (stores that name segments themselves, like the
// pool, ignore it and return their own), read it back by copy, release it.
type Store interface {
	Commit(key uint64, data []byte) (uint64, error)
	Read(key uint64, dst []byte) ([]byte, error) // appends to dst
	Release(key uint64) error
	Close() error
}

// Latcher is a Store with pinned zero-copy views.
type Latcher interface {
	Latch(key uint64) ([]byte, error)
	Unlatch(key uint64) error
}

// Open returns an empty store of impl with room for live payloads (and
// headroom for the workloads' own).
func Open(impl string, live int) (Store, error) {
	bytes := Capacity(live)
	switch impl {
	case "offheap":
		p, err := pool.New(bytes, &pool.Options{Name: "payload"})
		return offheapStore{p}, err
	case "gomap-heap":
		return &heapStore{m: make(map[uint64]heapSeg)}, nil
	case "gomap-meta":
		return &metaStore{buf: make([]byte, bytes), m: make(map[uint64]metaSeg)}, nil
	}
	return nil, fmt.Errorf("payload: open %q: unknown impl (have %v)", impl, Impls)
}

// Capacity is the bytes a store sized for live payloads holds: each payload
// rounded to 104 or 112 bytes, plus slack for the workloads' own.
func Capacity(live int) int { return (live + 64<<10) * 128 }

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
			return 0, errors.New("gomap-meta: full")
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
