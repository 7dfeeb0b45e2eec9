package arrowalloc_test

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/offheap/offheap/arena"
	"github.com/offheap/offheap/arrowalloc"
)

func Example() {
	a, err := arena.New(nil)
	if err != nil {
		panic(err)
	}
	mem := arrowalloc.New(a) // Arrow buffers outside the Go heap
	b := array.NewInt64Builder(mem)
	b.AppendValues([]int64{1, 2, 3}, nil)
	arr := b.NewInt64Array()
	b.Release()
	fmt.Println(arr)
	arr.Release()
	fmt.Println(a.Close()) // nil: Arrow gave every buffer back
	// Output:
	// [1 2 3]
	// <nil>
}
