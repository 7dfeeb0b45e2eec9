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
// never read. The allocator's counts stay exact: blocks a Cache holds count
// as allocated.
//
// Blocks a Cache holds count as allocated for the allocator's Close: call
// Flush or Close first. Stats counts them as Cached as of each class's last
// batch exchange, so the figure is exact after Flush and approximate while
// the cache is in use.
type Cache struct {
	a      *Allocator
	stacks [nClasses][]uintptr // offsets of the free blocks held (state stCached)
	pub    [nClasses]int       // len(stacks[k]) last told to the allocator
	closed bool
}

// NewCache returns a new, empty cache handle on a.
func (a *Allocator) NewCache() *Cache {
	c := &Cache{a: a}
	for i := 1; i < nClasses; i++ {
		c.stacks[i] = make([]uintptr, 0, cacheMax)
	}
	return c
}

// Alloc returns n zeroed bytes, as Allocator.Alloc does.
func (c *Cache) Alloc(n int) ([]byte, error) {
	if uint(n) > MaxSmall || c.closed {
		return c.allocSlow(n)
	}
	k := classOf(n)
	off, ok := c.pop(k)
	if !ok {
		if err := c.refill(k); err != nil {
			return nil, err
		}
		off, _ = c.pop(k)
	}
	return c.a.handOut(off, k, n), nil
}

// pop takes the block of class k freed last, if the cache holds one.
func (c *Cache) pop(k int) (uintptr, bool) {
	s := c.stacks[k]
	if len(s) == 0 {
		return 0, false
	}
	c.stacks[k] = s[:len(s)-1]
	return s[len(s)-1], true
}

// push adds a free block of class k and reports whether the cache now holds
// cacheMax of them (the caller then gives a batch back).
func (c *Cache) push(k int, off uintptr) (full bool) {
	s := append(c.stacks[k], off)
	c.stacks[k] = s
	return len(s) >= cacheMax
}

// takeOldest moves the len(dst) blocks of class k freed first into dst,
// keeping the most recently freed (likely in the CPU cache); the cache
// holds len(dst) at least.
func (c *Cache) takeOldest(k int, dst []uintptr) {
	s := c.stacks[k]
	copy(dst, s)
	c.stacks[k] = s[:copy(s, s[len(dst):])]
}

// fill adds blocks of class k while the cache holds fewer than cacheMax-1
// (so the next push does not give them straight back) and returns how many
// it took.
func (c *Cache) fill(k int, blocks []uintptr) int {
	s := c.stacks[k]
	m := min(len(blocks), cacheMax-1-len(s))
	if m <= 0 {
		return 0
	}
	c.stacks[k] = append(s, blocks[:m]...)
	return m
}

func (c *Cache) allocSlow(n int) ([]byte, error) {
	if c.closed {
		return nil, c.a.sizeError("cache alloc", n, ErrClosed)
	}
	return c.a.Alloc(n)
}

// refill takes a batch of class k blocks from the allocator.
func (c *Cache) refill(k int) error {
	a := c.a
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed.Load() {
		return a.sizeError("cache alloc", classSize[k], ErrClosed)
	}
	s := c.stacks[k][:cacheBatch] // empty, with room for cacheMax
	got, err := a.takeBlocksOrReclaim(k, s)
	if err != nil {
		return a.sizeError("cache alloc", classSize[k], err)
	}
	c.stacks[k] = s[:got]
	c.publish(k)
	return nil
}

// Free gives a block back to the cache; errors are as for Allocator.Free,
// and leave everything unchanged.
func (c *Cache) Free(b []byte) error {
	a := c.a
	if c.closed {
		return a.blockError("cache free", addrOf(b), ErrClosed)
	}
	off, inPages := a.offsetOf(b)
	if !inPages {
		return a.Free(b)
	}
	var k int
	if perP {
		// Without the lock. After a successful Close the normal build keeps
		// the memory mapped, released (see Close): the metadata reads as
		// zero, the claim fails and freeErr says ErrClosed.
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
	if c.push(k, off) {
		c.drain(k, cacheBatch)
	}
	return nil
}

// drain gives the allocator all but keep of the class k blocks held: the
// oldest, keeping the most recently freed (likely in the CPU cache).
func (c *Cache) drain(k, keep int) {
	a := c.a
	s := c.stacks[k]
	give := len(s) - keep
	a.mu.Lock()
	a.freeBlocks(k, s[:give])
	c.stacks[k] = s[:copy(s, s[give:])]
	c.publish(k)
	a.mu.Unlock()
}

// publish tells the allocator how many class k blocks the cache holds, for
// Stats and Close. Callers hold the allocator's lock.
func (c *Cache) publish(k int) {
	c.a.counts[k].cached += len(c.stacks[k]) - c.pub[k]
	c.pub[k] = len(c.stacks[k])
}

// Flush gives every block the cache holds back to the allocator.
func (c *Cache) Flush() {
	if c.a.closed.Load() {
		return
	}
	for k := 1; k < nClasses; k++ {
		if len(c.stacks[k]) > 0 || c.pub[k] != 0 { // a count published at the last refill
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
	return nil
}
