package cache_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/offheap/offheap/cache"
	"github.com/offheap/offheap/pool"
)

// A cache keeps byte keys and values off the Go heap, within a byte budget:
// Get copies a value out, Pin lends a zero-copy view that eviction leaves
// alone until its handle is released, and GetOrLoad fills misses, one load
// per key.
func Example() {
	c, err := cache.New(1<<20, &cache.Options{Name: "blocks"})
	if err != nil {
		panic(err)
	}
	defer c.Close()

	_ = c.Set([]byte("block-1"), []byte("hello, cache"))
	v, ok := c.Get(nil, []byte("block-1")) // a copy
	fmt.Println(string(v), ok)

	view, h, _ := c.Pin([]byte("block-1")) // zero-copy, pinned
	_, _ = c.Delete([]byte("block-1"))     // gone from the cache, but not from the view
	fmt.Println(string(view[:5]), c.Has([]byte("block-1")))
	_ = h.Release() // the entry's memory is freed now

	load := func(ctx context.Context, key []byte) ([]byte, error) {
		return []byte("loaded " + string(key)), nil
	}
	v, _ = c.GetOrLoad(context.Background(), nil, []byte("block-2"), load)
	fmt.Println(string(v))

	err = c.Set(nil, []byte("x"))
	fmt.Println(err, errors.Is(err, cache.ErrEmptyKey))

	st := c.Stats()
	fmt.Println(st.Entries, st.Hits, st.BytesPinned)
	// Output:
	// hello, cache true
	// hello false
	// loaded block-2
	// cache "blocks": set key of 0 bytes: empty key true
	// 1 2 0
}

// A cache can share a pool with other users: when one of them finds the
// pool full, the cache evicts to make room.
func Example_sharedPool() {
	p, _ := pool.New(64<<10, nil)
	defer p.Close() // after the cache
	c, _ := cache.New(64<<10, &cache.Options{Pool: p})
	defer c.Close()

	for i := range 1000 {
		_ = c.Set(fmt.Appendf(nil, "key-%d", i), make([]byte, 100))
	}
	ref, err := p.Commit(make([]byte, 32<<10)) // another user needs half the pool
	fmt.Println(err, c.Stats().BytesUsed <= 32<<10)
	_ = p.Release(ref)
	// Output:
	// <nil> true
}
