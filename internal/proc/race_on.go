//go:build race

package proc

// Race reports whether the race detector is on. It cannot see the ownership
// a pinned section gives, so it would report a goroutine touching per-P data
// after another goroutine ran on the same P; users of per-P data take locks
// instead under it.
const Race = true
