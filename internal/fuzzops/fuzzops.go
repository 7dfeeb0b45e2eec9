// Package fuzzops reads a fuzz input as a sequence of operations, for the
// model-based fuzz tests: each test's loop takes an operation code and the
// operation's arguments from one Reader until the input is used up, applies
// the operation to the type under test and to its model, and checks them.
package fuzzops

// Reader hands out the bytes of a fuzz input one at a time, as small
// numbers. Past the end every number is 0, so a truncated operation still
// runs, with zero arguments.
type Reader struct{ b []byte }

// New returns a Reader of b.
func New(b []byte) *Reader { return &Reader{b} }

// More reports whether any bytes are left.
func (r *Reader) More() bool { return len(r.b) > 0 }

// Len returns how many bytes are left.
func (r *Reader) Len() int { return len(r.b) }

// Byte returns the next byte, 0 to 255, or 0 past the end.
func (r *Reader) Byte() int {
	if len(r.b) == 0 {
		return 0
	}
	v := int(r.b[0])
	r.b = r.b[1:]
	return v
}

// Intn returns the next byte modulo n, which must be positive: an operation
// code, or a choice among n.
func (r *Reader) Intn(n int) int { return r.Byte() % n }

// Uint16 returns the next two bytes as a big-endian number, 0 to 65535.
func (r *Reader) Uint16() int {
	hi := r.Byte()
	return hi<<8 | r.Byte()
}
