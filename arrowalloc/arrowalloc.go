// Package arrowalloc is an Apache Arrow memory.Allocator backed by an
// offheap arena: Arrow buffers live outside the Go heap, so the garbage
// collector never scans or copies them, and their memory goes back to the
// operating system as soon as Arrow releases them.
//
// Checked (NewChecked) is the allocator for tests: it makes every released
// buffer inaccessible, so the reads of released buffers that Go's allocator
// hides (its garbage collector keeps the old bytes) fault, and reports them,
// and double frees and leaks, with the buffers' allocation and release call
// stacks; its type documentation explains the design.
//
// It is a separate module so that the offheap core does not depend on Arrow.
package arrowalloc

import (
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/offheap/offheap/arena"
)

// Alignment is the alignment of every buffer Allocate and Reallocate return,
// as Arrow requires.
const Alignment = 64

// Allocator implements memory.Allocator on an arena.Allocator. Buffers are
// 64-byte aligned and zeroed; Reallocate keeps their data. It is safe for
// concurrent use, as the arena is.
//
// The memory.Allocator interface has no way to return an error. An
// allocation the arena cannot serve panics with the arena's error, as the Go
// runtime does when memory runs out. A bad Free (a buffer freed twice, or one
// this allocator did not hand out) changes nothing and is remembered: Err
// returns the first such error.
type Allocator struct {
	a   *arena.Allocator
	mu  sync.Mutex
	err error
	bad int
}

var _ memory.Allocator = (*Allocator)(nil)

// New returns an Arrow allocator backed by a. Closing a is up to the caller,
// once every buffer is freed.
func New(a *arena.Allocator) *Allocator { return &Allocator{a: a} }

// roundUp rounds a request up to a multiple of Alignment. The arena's blocks
// of such sizes are Alignment-aligned: pools start on a page, the classes for
// multiples of 64 are multiples of 64, and large blocks are page aligned.
func roundUp(n int) int { return (n + Alignment - 1) &^ (Alignment - 1) }

// Allocate returns size zeroed bytes, 64-byte aligned. A size of 0 returns
// an empty slice that holds no memory.
func (m *Allocator) Allocate(size int) []byte {
	if size == 0 {
		return []byte{}
	}
	b, err := m.a.Alloc(roundUp(size))
	if err != nil {
		panic(fmt.Errorf("arrowalloc: allocate %d bytes: %w", size, err))
	}
	return b[:size:size]
}

// Reallocate returns size bytes holding the first min(len(b), size) bytes of
// b, the rest zero, 64-byte aligned; b must not be used afterwards.
func (m *Allocator) Reallocate(size int, b []byte) []byte {
	switch {
	case cap(b) == 0:
		return m.Allocate(size)
	case size == 0:
		m.Free(b)
		return []byte{}
	}
	nb, err := m.a.Realloc(b, roundUp(size))
	if err != nil {
		if errors.Is(err, arena.ErrDoubleFree) || errors.Is(err, arena.ErrForeign) {
			m.record(err)
			nb = m.Allocate(size)
			copy(nb, b)
			return nb
		}
		panic(fmt.Errorf("arrowalloc: reallocate %d bytes to %d: %w", len(b), size, err))
	}
	return nb[:size:size]
}

// Free gives b back to the arena. Empty slices (from Allocate(0)) are ignored.
func (m *Allocator) Free(b []byte) {
	if cap(b) == 0 {
		return
	}
	if err := m.a.Free(b); err != nil {
		m.record(err)
	}
}

func (m *Allocator) record(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bad++
	if m.err == nil {
		m.err = fmt.Errorf("arrowalloc: %w", err)
	}
}

// Err returns the first bad Free or Reallocate seen (a buffer freed twice or
// not from this allocator), with how many there were, or nil.
func (m *Allocator) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err == nil {
		return nil
	}
	return fmt.Errorf("%d bad frees, the first: %w", m.bad, m.err)
}
