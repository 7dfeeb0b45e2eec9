// Errors: the sentinels, and the helpers that wrap them in the one shape
// offheap uses everywhere: the package (and the allocator's name, if it has
// one), then the operation and its object, then what went wrong, then the
// operating system's cause.

package arena

import (
	"errors"
	"fmt"
	"syscall"
)

// Errors returned by arena, wrapped with context; test for them with errors.Is.
var (
	ErrDoubleFree  = errors.New("double free")                       // Free of a block that is free (or held by a cache)
	ErrForeign     = errors.New("not a block of this allocator")     // Free of a slice the allocator did not hand out
	ErrLeaked      = errors.New("blocks still allocated")            // Close with live blocks
	ErrClosed      = errors.New("closed")                            // use after Close
	ErrInvalidSize = errors.New("invalid size")                      // a negative size, or bad Options
	ErrTooLarge    = errors.New("request too large")                 // more than MaxAlloc bytes, or than Options.LargeReserve
	ErrExhausted   = errors.New("address space reservation is full") // every arena of the reservation is in use
)

// label names the package and, if it has one, the allocator.
func label(name string) string {
	if name == "" {
		return "arena"
	}
	return fmt.Sprintf("arena %q", name)
}

// errorf wraps err with the allocator and what was being done.
func (a *Allocator) errorf(op string, err error) error {
	return fmt.Errorf("%s: %s: %w", label(a.name), op, cause(err))
}

// sizeError wraps err with the allocator, the operation and its size.
func (a *Allocator) sizeError(op string, n int, err error) error {
	return fmt.Errorf("%s: %s %d bytes: %w", label(a.name), op, n, cause(err))
}

// blockError wraps err with the allocator, the operation and the address of
// the slice it was given.
func (a *Allocator) blockError(op string, addr uintptr, err error) error {
	return fmt.Errorf("%s: %s %#x: %w", label(a.name), op, addr, cause(err))
}

// count says "1 block", "2 blocks".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// cause is what an error from vmem says, without vmem's own wrapping: the
// operating system's error where there is one.
func cause(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
