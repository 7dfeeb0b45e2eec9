package arena_test

import (
	"errors"
	"fmt"

	"github.com/offheap/offheap/arena"
)

func Example() {
	a, err := arena.New(nil)
	if err != nil {
		panic(err)
	}
	b, _ := a.Alloc(100) // 100 zeroed bytes outside the Go heap
	copy(b, "hello")
	b, _ = a.Realloc(b, 1000) // moved to a larger block, data kept
	fmt.Println(string(b[:5]), len(b))

	_ = a.Free(b)
	err = a.Free(b)
	fmt.Println(errors.Is(err, arena.ErrDoubleFree))

	// A single-owner cache handle for a hot loop.
	c := a.NewCache()
	for i := range 1000 {
		x, _ := c.Alloc(16 + i%240)
		_ = c.Free(x)
	}
	_ = c.Close()

	leak, _ := a.Alloc(64)
	fmt.Println(a.Close())
	_ = a.Free(leak)
	fmt.Println(a.Close())
	// Output:
	// hello 1000
	// true
	// arena: close with 1 block (64 bytes) allocated, 0 held by caches: blocks still allocated
	// <nil>
}
