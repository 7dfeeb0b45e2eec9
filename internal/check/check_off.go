//go:build !offheapcheck

// The normal build: checks compile away.

package check

// On reports whether this is the checked build (-tags offheapcheck).
const On = false
