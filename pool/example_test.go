package pool_test

import (
	"errors"
	"fmt"

	"github.com/offheap/offheap/pool"
)

// A pool holds byte segments off the Go heap: commit copies in, Read copies
// out, Latch gives a zero-copy view that stays put until Unlatch, Release
// frees, and a commit that finds the free space fragmented compacts it.
func Example() {
	p, err := pool.New(1<<20, &pool.Options{Name: "example", MaxCapacity: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	ref, _ := p.Commit([]byte("hello, pool"))
	buf, _ := p.Read(ref, nil) // a copy
	fmt.Println(string(buf))

	view, _ := p.Latch(ref) // zero-copy and pinned: compaction will not move it
	p.Compact()
	fmt.Println(string(view[:5]))
	_ = p.Unlatch(ref)

	_ = p.Release(ref)
	_, err = p.Read(ref, nil)
	fmt.Println(errors.Is(err, pool.ErrUnknownRef))

	st := p.Stats()
	fmt.Println(st.Commits, st.Reads, st.Latches, st.Releases, st.Used)
	// Output:
	// hello, pool
	// hello
	// true
	// 1 1 1 1 0
}
