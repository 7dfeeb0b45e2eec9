// Package errs builds offheap's errors in their one shape:
//
//	pkg "name": op object: detail: sentinel words: OS cause
//
// The head (the package, the object's name quoted when it has one, the
// operation and its object, a path unquoted) comes first; what went wrong
// comes last. An Error wraps its cause, so errors.Is and errors.As see every
// sentinel and OS error in the chain.
//
// A package above wraps an error from a package below with its own head,
// and the head below is dropped from the text: a column open that a vmem
// failure caused reads `column: open /x: 12288 bytes into 4096 reserved:
// reservation exhausted`, never `column: open /x: mapped: open /x: vmem: ...`.
// For the same reason an *fs.PathError shows only its Err: the head names
// the path already.
package errs

import (
	"io/fs"
	"strconv"
)

// Head returns the head of an error: `pkg "name": op path arg`, with the
// name (quoted), the path and the operation's argument each left out when
// "". A path shows unquoted, as the object of op.
func Head(pkg, name, op, path, arg string) string {
	h := pkg
	if name != "" {
		h += " " + strconv.Quote(name)
	}
	h += ": " + op
	for _, s := range [...]string{path, arg} {
		if s != "" {
			h += " " + s
		}
	}
	return h
}

// Error is an error in the one shape: head, an optional detail, and the cause.
type Error struct {
	head   string // `pkg "name": op object`
	detail string // more about the failure, or ""
	err    error  // the sentinel, the OS error or an Error from a package below
}

// New returns an error reading head, then detail (when not empty), then
// the text of err without any head of its own. err must not be nil.
func New(head, detail string, err error) error {
	return &Error{head: head, detail: detail, err: err}
}

// Error returns the head, the detail and the cause.
func (e *Error) Error() string { return e.head + ": " + e.tail() }

// Unwrap returns the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.err }

// tail is the error's text after its head.
func (e *Error) tail() string {
	s := causeText(e.err)
	if e.detail != "" {
		s = e.detail + ": " + s
	}
	return s
}

// causeText is err's text without the head a package above replaces: an
// Error's head, a PathError's operation and path.
func causeText(err error) string {
	switch c := err.(type) {
	case *Error:
		return c.tail()
	case *fs.PathError:
		return causeText(c.Err)
	}
	return err.Error()
}
