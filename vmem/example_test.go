package vmem_test

import (
	"fmt"
	"unsafe"

	"github.com/offheap/offheap/vmem"
)

// A Region reserves address space once and grows in place: a view taken
// before growth still points at the same memory afterwards.
func Example() {
	r, err := vmem.Reserve(1<<30, &vmem.Options{Name: "example"}) // 1 GiB of address space, no memory
	if err != nil {
		panic(err)
	}
	defer r.Close()

	if err := r.Grow(64 << 10); err != nil { // 64 KiB ready
		panic(err)
	}
	before := r.Bytes()
	copy(before, "hello")

	if err := r.Grow(256 << 20); err != nil { // 256 MiB ready, same address
		panic(err)
	}
	after := r.Bytes()
	fmt.Println(string(after[:5]), unsafe.SliceData(before) == unsafe.SliceData(after), len(after)>>20)

	// Hand the pages back to the OS; the reservation stays.
	if err := r.Release(0, r.Len()); err != nil {
		panic(err)
	}
	_ = r.Reuse(0, r.Len())
	fmt.Println(r.Bytes()[0])
	// Output:
	// hello true 256
	// 0
}
