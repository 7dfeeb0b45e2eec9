package arrowalloc_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

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

// A test that keeps a value of an Arrow array past the array's release: on
// Go's allocator it passes (the garbage collector keeps the old bytes); under
// a Checked allocator the read faults and Run reports it with the buffer's
// allocation and release sites.
func ExampleChecked() {
	mem, err := arrowalloc.NewChecked(nil)
	if err != nil {
		panic(err)
	}
	b := array.NewStringBuilder(mem)
	b.AppendValues([]string{"alpha", "beta"}, nil)
	arr := b.NewStringArray()
	b.Release()
	s := arr.Value(1) // a string over the array's buffer, not a copy
	arr.Release()     // the bug: s outlives its buffer

	err = mem.Run(func() { fmt.Println(strings.ToUpper(s)) })
	var e *arrowalloc.BufferError
	if errors.As(err, &e) {
		fmt.Println(errors.Is(err, arrowalloc.ErrUseAfterRelease), e.Offset)
		fmt.Println("released at", function(e.Released, 1))
	}
	fmt.Println(mem.Close()) // nil: no buffer is live
	// Output:
	// true 5
	// released at github.com/apache/arrow-go/v18/arrow/memory.(*Buffer).Release
	// <nil>
}

// function returns the function of the frame of stack at depth i (1 is the
// innermost).
func function(stack arrowalloc.Stack, i int) string {
	frames := runtime.CallersFrames(stack)
	for {
		f, more := frames.Next()
		if i--; i == 0 || !more {
			return f.Function
		}
	}
}
