// Package check is the switch for offheap's checked build.
//
// Building with -tags offheapcheck sets On, and every package then verifies its
// invariants on each operation, poisons memory it hands back and, where cheap,
// makes that memory inaccessible, so a stale view faults instead of reading
// reused bytes. Without the tag On is a false constant and the compiler removes
// every guarded check.
package check

import "fmt"

// Poison is the byte written over memory that was freed or released in the
// checked build, so a read through a stale view is easy to recognise.
const Poison byte = 0xDB

// Fill overwrites b with Poison when the checked build is on.
func Fill(b []byte) {
	if !On {
		return
	}
	for i := range b {
		b[i] = Poison
	}
}

// Invariant panics with a message built from format and args when cond is
// false and the checked build is on. A broken invariant is a bug in offheap,
// not bad input, so it panics rather than returning an error.
func Invariant(cond bool, format string, args ...any) {
	if On && !cond {
		panic("offheap: invariant broken: " + fmt.Sprintf(format, args...))
	}
}
