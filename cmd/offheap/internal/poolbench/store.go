// The third-party stores of the pool suite, behind payload.Store: off-GC-heap
// byte caches doing the same commit, read and release work by key.

package poolbench

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/VictoriaMetrics/fastcache"
	"github.com/coocood/freecache"

	"github.com/offheap/offheap/internal/workload/payload"
)

// Impls are the suite's implementations: payload's (offheap first), then
// fastcache (VictoriaMetrics) and freecache (coocood), off-GC-heap byte
// caches with no pinned views.
var Impls = append(slices.Clip(payload.Impls), "fastcache", "freecache")

// open returns an empty store of impl with room for live payloads.
func open(impl string, live int) (payload.Store, error) {
	bytes := payload.Capacity(live)
	switch impl {
	case "fastcache":
		// Each of its 512 buckets is a ring that overwrites its oldest
		// entries when full: size it so nothing live is lost.
		return fastcacheStore{fastcache.New(4 * bytes)}, nil
	case "freecache":
		// Likewise 256 ring segments, which evict when full.
		return freecacheStore{freecache.NewCache(4 * bytes)}, nil
	}
	if !slices.Contains(payload.Impls, impl) {
		return nil, fmt.Errorf("open %q: unknown impl (have %v)", impl, Impls)
	}
	return payload.Open(impl, live)
}

// memoryFor estimates the most memory a store of impl holding live payloads uses.
func memoryFor(impl string, live int) int64 {
	per := int64(300) // payload, metadata and map overhead, generously
	if impl == "fastcache" || impl == "freecache" {
		per = 4 * 128 // sized four times over; freecache allocates it all
	}
	return int64(live+64<<10) * per
}

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
		return dst, payload.ErrMissing
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
		return dst, payload.ErrMissing
	}
	if len(v) > 0 && cap(dst)-len(dst) >= len(v) {
		return dst[:len(dst)+len(v)], nil // copied in place
	}
	return append(dst, v...), nil
}

func (s freecacheStore) Release(k uint64) error {
	kb := keyBytes(k)
	if !s.c.Del(kb[:]) {
		return payload.ErrMissing
	}
	return nil
}

func (s freecacheStore) Close() error { s.c.Clear(); return nil }
