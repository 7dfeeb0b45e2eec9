// The shared stacks: per size class, a lock-free stack of free blocks that
// Allocator.Alloc and Allocator.Free use before they take the lock, so a
// goroutine that allocates and frees through the shared Allocator usually
// pays one atomic compare-and-swap per call instead of a lock.

package arena

import (
	"encoding/binary"
	"sync/atomic"
)

// sharedMax is the most blocks a class's shared stack holds; a Free that
// finds it full takes the lock and gives sharedMax/2 back to their pools, so
// free memory still reaches the pools (and the OS) in batches.
const sharedMax = 64

// sharedBatch is how many blocks an Alloc that finds the stack empty takes
// from the pools under one lock.
const sharedBatch = 16

// sharedStack is a Treiber stack of free blocks. The head packs a generation
// (high 32 bits, bumped by every change, so a stale compare-and-swap fails:
// no ABA) and the top block's offset/16+1 (low 32 bits; 0 when empty). Each
// block on the stack links to the next in bytes 8-16 of its memory (its first
// 8 bytes hold the free-block tag): the next block's offset/16+1 and the
// depth of the stack from this block down. Blocks on a stack count as
// allocated in their pools, so their pages stay mapped and ready; a pop that
// reads the link of a block another goroutine popped meanwhile reads stale
// bytes and then fails its compare-and-swap.
type sharedStack struct {
	head atomic.Uint64
	_    [56]byte // a cache line each
}

const lowMask = 1<<32 - 1

// readLink returns the link word of the block at off.
func (a *Allocator) readLink(off uintptr) uint64 {
	return binary.NativeEndian.Uint64(a.block(off+8, 8))
}

func (a *Allocator) writeLink(off uintptr, w uint64) {
	binary.NativeEndian.PutUint64(a.block(off+8, 8), w)
}

// push puts the tagged free block at off of class c on the shared stack, or
// reports false if the stack is full.
func (a *Allocator) push(c int, off uintptr) bool {
	s := &a.shared[c]
	for {
		h := s.head.Load()
		depth := uint64(0)
		if top := h & lowMask; top != 0 {
			depth = a.readLink(uintptr(top-1)<<4) >> 32
		}
		if depth >= sharedMax {
			return false
		}
		a.writeLink(off, h&lowMask|(depth+1)<<32)
		if s.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(off>>4+1)) {
			return true
		}
	}
}

// pop takes a block of class c from the shared stack.
func (a *Allocator) pop(c int) (uintptr, bool) {
	s := &a.shared[c]
	for {
		h := s.head.Load()
		top := h & lowMask
		if top == 0 {
			return 0, false
		}
		off := uintptr(top-1) << 4
		next := a.readLink(off) & lowMask
		if s.head.CompareAndSwap(h, (h>>32+1)<<32|next) {
			return off, true
		}
	}
}

// sharedDepth returns how many blocks class c's shared stack holds.
func (a *Allocator) sharedDepth(c int) int {
	top := a.shared[c].head.Load() & lowMask
	if top == 0 {
		return 0
	}
	return int(a.readLink(uintptr(top-1)<<4) >> 32)
}

// drainShared gives up to k blocks of class c's shared stack back to their
// pools. Callers hold a.mu.
func (a *Allocator) drainShared(c, k int) {
	for ; k > 0; k-- {
		off, ok := a.pop(c)
		if !ok {
			return
		}
		a.freeBlock(off, c)
	}
}

// drainAllShared empties every shared stack. Callers hold a.mu.
func (a *Allocator) drainAllShared() {
	for c := 1; c < nClasses; c++ {
		a.drainShared(c, sharedMax+1)
	}
}

// refillShared takes a batch of class c blocks from the pools: one to return,
// the others pushed on the shared stack. Callers hold a.mu.
func (a *Allocator) refillShared(c int) (uintptr, error) {
	off, err := a.allocBlock(c)
	if err != nil {
		return 0, err
	}
	for range sharedBatch - 1 {
		more, err := a.allocBlock(c)
		if err != nil {
			break
		}
		if !a.push(c, more) {
			a.freeBlock(more, c)
			break
		}
	}
	return off, nil
}
