//go:build offheapcheck

// The checked build: invariant checks, poisoning and protection are on.

package check

// On reports whether this is the checked build (-tags offheapcheck).
const On = true
