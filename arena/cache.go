// Cache: a single-owner handle that serves Alloc and Free from per-class
// stacks of blocks without the allocator's lock, moving blocks to and from the
// allocator in batches.

package arena

// Cache batch sizes: a refill takes cacheBatch blocks of a class; a class
// stack that reaches cacheMax blocks gives cacheBatch back.
const (
	cacheBatch = 32
	cacheMax   = 2 * cacheBatch
)

// Cache is a handle on an Allocator for one goroutine's hot loop. It keeps a
// stack of free blocks per size class: Alloc pops one (refilling the stack
// with a batch under the allocator's lock when empty) and Free pushes one
// (giving a batch back when full), so most calls take no lock at all.
//
// A Cache is not safe for concurrent use: one goroutine owns it at a time.
// Blocks are interchangeable between a Cache and its Allocator: a block from
// either may be freed through either, or through another Cache of the same
// Allocator. Blocks above MaxSmall go straight to the Allocator.
//
// # Double frees
//
// Free finds double and foreign frees as Allocator.Free does, without the
// lock: by the block's state byte, out of band, so the block itself is
// never read; like it, it takes the class from the slice's capacity first
// (see Allocator, "Fast paths"). The allocator's counts stay exact: blocks
// a Cache holds count as allocated.
//
// Invariants: held[k] <= cacheMax; limit <= the allocator's carvedEnd, 0
// once the cache is closed.
//
// Blocks a Cache holds count as allocated for the allocator's Close: call
// Flush or Close first. Stats counts them as Cached as of each class's last
// batch exchange, so the figure is exact after Flush and approximate while
// the cache is in use.
type Cache struct {
	bases          // the allocator's
	limit  uintptr // offsets below it lie in carved arenas, as last seen; 0 once closed
	a      *Allocator
	held   [nClasses]int               // blocks held per class
	stacks [nClasses][cacheMax]uintptr // offsets of the free blocks held (state stCached): stacks[k][:held[k]], the last freed on top
	pub    [nClasses]int               // held[k] last told to the allocator
	closed bool
}

// NewCache returns a new, empty cache handle on a.
func (a *Allocator) NewCache() *Cache {
	return &Cache{a: a, bases: a.bases, limit: a.carvedEnd()}
}

// Alloc returns n zeroed bytes, as Allocator.Alloc does.
func (c *Cache) Alloc(n int) ([]byte, error) {
	if perP && uint(n) <= MaxSmall {
		k := classOf(n)
		if h := c.held[k] - 1; h >= 0 {
			c.held[k] = h
			return c.handOut(c.stacks[k][h&(cacheMax-1)], k, n), nil
		}
	}
	return c.allocSlow(n)
}

// allocSlow is Alloc when the fast path cannot serve it: a closed cache, a
// large block or a bad size, an empty stack (refilled with a batch under the
// allocator's lock); in builds without per-P caches, every Alloc.
func (c *Cache) allocSlow(n int) ([]byte, error) {
	a := c.a
	if c.closed {
		return nil, a.sizeError("cache alloc", n, ErrClosed)
	}
	if uint(n) > MaxSmall {
		return a.Alloc(n)
	}
	k := classOf(n)
	off, ok := c.pop(k)
	if !ok {
		if err := c.refill(k); err != nil {
			return nil, err
		}
		off, _ = c.pop(k)
	}
	return a.serve(off, k, n), nil
}

// stack returns the class k blocks held, the last freed last.
func (c *Cache) stack(k int) []uintptr { return c.stacks[k][:c.held[k]] }

// pop takes the block of class k freed last, if the cache holds one.
func (c *Cache) pop(k int) (uintptr, bool) {
	h := c.held[k] - 1
	if h < 0 {
		return 0, false
	}
	c.held[k] = h
	return c.stacks[k][h], true
}

// push adds a free block of class k; the cache holds fewer than cacheMax.
func (c *Cache) push(k int, off uintptr) {
	c.stacks[k][c.held[k]] = off
	c.held[k]++
}

// takeOldest moves the len(dst) blocks of class k freed first into dst,
// keeping the most recently freed (likely in the CPU cache); the cache
// holds len(dst) at least.
func (c *Cache) takeOldest(k int, dst []uintptr) {
	s := c.stack(k)
	copy(dst, s)
	c.held[k] = copy(s, s[len(dst):])
}

// fill adds blocks of class k while the cache holds fewer than cacheMax-1
// (so the next push does not give them straight back) and returns how many
// it took.
func (c *Cache) fill(k int, blocks []uintptr) int {
	m := min(len(blocks), cacheMax-1-c.held[k])
	if m <= 0 {
		return 0
	}
	c.held[k] += copy(c.stacks[k][c.held[k]:], blocks[:m])
	return m
}

// refill takes a batch of class k blocks from the allocator.
func (c *Cache) refill(k int) error {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return a.sizeError("cache alloc", classSize[k], ErrClosed)
	}
	got, err := a.takeBlocksOrReclaim(k, c.stacks[k][:cacheBatch]) // the stack is empty
	if err != nil {
		return a.sizeError("cache alloc", classSize[k], err)
	}
	c.held[k] = got
	c.publish(k)
	return nil
}

// Free gives a block back to the cache; errors are as for Allocator.Free,
// and leave everything unchanged.
func (c *Cache) Free(b []byte) error {
	if perP && c.freeFast(b) {
		return nil
	}
	return c.freeSlow(b)
}

// freeFast is Free's common case, without the lock, in the builds with
// per-P caches: a small block of a carved arena whose class is that of
// cap(b), to a class stack with room. It claims the block (moves its state
// byte from stUser to stCached, which names the class: so the claim fails
// unless the block's page is of that class) and pushes it, or reports false
// and changes nothing.
//
// After a successful Close of the allocator the memory stays mapped,
// released (see Close): the metadata reads as zero and the claim fails.
func (c *Cache) freeFast(b []byte) bool {
	off := c.offset(b)
	if off >= c.limit || uint(cap(b)) > MaxSmall {
		return false
	}
	k := classOf(cap(b))
	h := c.held[k]
	if h >= cacheMax || !isBlockStart(off&pageMask, k) || !claim(c.stateAt(off, k), k) {
		return false
	}
	c.stacks[k][h] = off
	c.held[k] = h + 1
	return true
}

// freeSlow is Free when freeFast cannot: a closed cache, a large block, a
// slice the allocator did not hand out, a block of an arena carved since the
// cache last looked, a slice whose capacity is that of a smaller class than
// its block's, a full class stack (a batch goes back to the allocator); in
// builds without per-P caches, every Free.
func (c *Cache) freeSlow(b []byte) error {
	a := c.a
	if c.closed {
		return a.blockError("cache free", addrOf(b), ErrClosed)
	}
	off, inPages := a.offsetOf(b)
	if !inPages {
		return a.Free(b)
	}
	c.limit = a.carvedEnd()
	var k int
	if perP {
		// Without the lock, as in freeFast.
		if k = a.freeing(off, cap(b)); k == 0 {
			return a.freeErr("cache free", off, cap(b))
		}
	} else { // every state change under the lock (see pcache.go)
		a.mu.Lock()
		var err error
		k, err = a.claimLocked(off, cap(b))
		a.mu.Unlock()
		if err != nil {
			return a.blockError("cache free", addrOf(b), err)
		}
	}
	if c.held[k] == cacheMax {
		c.drain(k, cacheBatch)
	}
	c.push(k, off)
	return nil
}

// drain gives the allocator all but keep of the class k blocks held: the
// oldest, keeping the most recently freed (likely in the CPU cache).
func (c *Cache) drain(k, keep int) {
	a := c.a
	s := c.stack(k)
	give := len(s) - keep
	a.mu.Lock()
	a.freeBlocks(k, s[:give])
	c.held[k] = copy(s, s[give:])
	c.publish(k)
	a.mu.Unlock()
}

// publish tells the allocator how many class k blocks the cache holds, for
// Stats and Close. Callers hold the allocator's lock.
func (c *Cache) publish(k int) {
	c.a.counts[k].cached += c.held[k] - c.pub[k]
	c.pub[k] = c.held[k]
}

// Flush gives every block the cache holds back to the allocator.
func (c *Cache) Flush() {
	if c.a.closed.Load() {
		return
	}
	for k := 1; k < nClasses; k++ {
		if c.held[k] > 0 || c.pub[k] != 0 { // a count published at the last refill
			c.drain(k, 0)
		}
	}
}

// Close flushes the cache; later calls on it return ErrClosed.
func (c *Cache) Close() error {
	if c.closed {
		return c.a.errorf("close cache", ErrClosed)
	}
	c.Flush()
	c.closed = true
	c.limit = 0 // every Free takes the slow path, which says ErrClosed
	return nil
}
