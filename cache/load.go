// The loader: GetOrLoad runs one load per missing key, however many
// goroutines miss it at once, and shares its value with all of them.

package cache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Loader loads the value of a key the cache does not hold. It runs on a
// goroutine of its own, with a context that is cancelled once every caller
// waiting for it has given up (or the cache is closed); it must not keep
// key, and must not change the value it returns afterwards. A loader that
// panics, or calls runtime.Goexit, fails the load as an error would: its
// callers get an error (wrapping the panic's value, if an error), nothing
// is stored, and the next miss loads afresh.
type Loader func(ctx context.Context, key []byte) ([]byte, error)

// loader tracks the loads in flight, by key. Its lock may be held while
// peek takes the cache's read lock, never the other way.
type loader struct {
	mu          sync.Mutex
	flights     map[string]*flight
	closed      bool
	closing     chan struct{} // closed by cancelAll; made by the first join
	loads, errs atomic.Int64
	inMap       atomic.Int64 // len(flights), for Set and Delete to read without the lock
}

// flight is one load in flight and the callers waiting for it.
type flight struct {
	done    chan struct{} // closed when val and err are set
	val     []byte
	err     error
	waiters int
	cancel  context.CancelFunc
	// stale says a Set or Delete of the key began during the load, or
	// nobody waits for it any more: its value, read before, is returned to
	// the waiters but not stored, lest it replace a newer one.
	stale atomic.Bool
}

// errSuperseded is the error of the Set of a load's value that was not
// made because the load was superseded; run ignores it.
var errSuperseded = errors.New("load superseded")

// outdated reports whether the value of f, a load (nil for a caller's Set),
// must not be stored: a Set or Delete of its key superseded it, or the key
// is held (the load began on a miss, so a Set stored the key since).
func (f *flight) outdated(held bool) bool { return f != nil && (held || f.stale.Load()) }

// supersede marks the load in flight for key, if any, stale: a Set or
// Delete of key has begun, and the value the load read before must not
// replace the Set's or undo the Delete. A load that starts after it reads
// the newer value (a source written before its cache is). Without loads in
// flight it takes no lock.
func (l *loader) supersede(key []byte) {
	if l.inMap.Load() == 0 {
		return
	}
	l.mu.Lock()
	if f := l.flights[string(key)]; f != nil {
		f.stale.Store(true)
	}
	l.mu.Unlock()
}

// GetOrLoad appends the value of key to dst, as Get does; on a miss it
// calls load and stores what it returns, as Set does. Concurrent misses of
// one key share one load and all get its value. A failed load is not
// cached: every caller waiting for it gets its error. A value the cache
// cannot store (ErrRejected, say) is still returned. Cancelling ctx ends
// this caller's wait with ctx's error; the load goes on for the others, and
// is cancelled when none is left. Close cancels every load and ends every
// wait with ErrClosed, even if a loader ignores its context. A miss with
// ctx done already returns ctx's error and starts no load. A Set or Delete
// of key made while the load runs wins: the load's value, read before it,
// is still returned to its waiters but not stored, so it never replaces a
// newer value or undoes a Delete; nor is the value of a load every waiter
// gave up on stored.
func (c *Cache) GetOrLoad(ctx context.Context, dst, key []byte, load Loader) ([]byte, error) {
	if err := c.checkKey("load", key); err != nil {
		return dst, err
	}
	if load == nil {
		return dst, c.keyError("load", key, fmt.Errorf("nil loader: %w", ErrInvalid))
	}
	if v, ok := c.Get(dst, key); ok {
		return v, nil
	}
	if err := ctx.Err(); err != nil {
		// Done already: no load for nobody to wait for, and no race
		// between its value and ctx's error below.
		return dst, c.keyError("load", key, err)
	}
	f, v, err := c.join(ctx, dst, key, load)
	if f == nil {
		return v, err
	}
	select {
	case <-f.done:
		if f.err != nil {
			return dst, c.keyError("load", key, f.err)
		}
		return append(dst, f.val...), nil
	case <-ctx.Done():
		c.leave(string(key), f)
		return dst, c.keyError("load", key, ctx.Err())
	case <-c.loads.closing: // made by join before f, under the loader's lock
		// Close cancelled the load's context; a loader that ignores it
		// must not hold the waiters.
		c.leave(string(key), f)
		return dst, c.keyError("load", key, fmt.Errorf("%w: %w", ErrClosed, context.Canceled))
	}
}

// join finds the flight loading key, or starts one; if the key was stored
// meanwhile it returns no flight but the value appended to dst.
func (c *Cache) join(ctx context.Context, dst, key []byte, load Loader) (*flight, []byte, error) {
	l := &c.loads
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, dst, c.keyError("load", key, ErrClosed)
	}
	if f := l.flights[string(key)]; f != nil {
		if ctx.Value(f) != nil {
			// Called by f's own loader (or a load it started): waiting
			// for f would wait for itself, for ever.
			return nil, dst, c.keyError("load", key, fmt.Errorf("loader called GetOrLoad for its own key: %w", ErrInvalid))
		}
		f.waiters++
		return f, nil, nil
	}
	// A flight that just ended stored its value before leaving the map.
	// It is a peek: GetOrLoad's Get counted this lookup's miss already.
	if v, ok := c.peek(dst, key); ok {
		return nil, v, nil
	}
	if l.closing == nil {
		l.closing = make(chan struct{})
	}
	f := &flight{done: make(chan struct{}), waiters: 1}
	// The loader's context names f, so that a GetOrLoad it makes with it
	// for the same key is caught (see above) rather than waiting for f.
	lctx, cancel := context.WithCancel(context.WithValue(context.WithoutCancel(ctx), f, f))
	f.cancel = cancel
	if l.flights == nil {
		l.flights = make(map[string]*flight)
	}
	k := string(key)
	l.flights[k] = f
	l.inMap.Add(1)
	go c.run(lctx, k, f, load)
	return f, nil, nil
}

// errLoaderExited fails a load whose loader neither returned nor panicked:
// it called runtime.Goexit (t.FailNow, say).
var errLoaderExited = errors.New("loader exited without returning")

// run calls the loader for key, stores its value, and ends the flight. A
// loader that panics fails the load instead of the program; one that calls
// runtime.Goexit fails it too, and the flight still ends (land is
// deferred), so its waiters do not wait for ever.
func (c *Cache) run(ctx context.Context, key string, f *flight, load Loader) {
	defer c.land(key, f)
	f.err = errLoaderExited // until the loader returns
	func() {
		defer func() {
			if r := recover(); r != nil {
				f.err = panicError(r)
			}
		}()
		f.val, f.err = load(ctx, []byte(key))
	}()
	if f.err == nil {
		_ = c.set([]byte(key), f.val, f) // a value the cache cannot keep is still returned
	}
}

// panicError is the error of a load whose loader panicked with r: it
// wraps r if r is an error, so that callers can test for it.
func panicError(r any) error {
	if err, ok := r.(error); ok {
		return fmt.Errorf("loader panicked: %w", err)
	}
	return fmt.Errorf("loader panicked: %v", r)
}

// land ends flight f of key: it cancels the loader's context, takes f out
// of the map, counts the load and wakes the waiters.
func (c *Cache) land(key string, f *flight) {
	f.cancel()
	l := &c.loads
	l.mu.Lock()
	l.unmap(key, f)
	closed := l.closed
	l.mu.Unlock()
	if f.err != nil && closed {
		// Close cancelled the load (or it failed after Close): say so,
		// lest a caller take the context's error for its own.
		f.err = fmt.Errorf("%w: %w", ErrClosed, f.err)
	}
	l.loads.Add(1)
	if f.err != nil {
		l.errs.Add(1)
	}
	close(f.done)
}

// leave drops a caller that stopped waiting; the last one cancels the load
// and takes it out of the map, so a later miss starts afresh.
func (c *Cache) leave(key string, f *flight) {
	l := &c.loads
	l.mu.Lock()
	defer l.mu.Unlock()
	if f.waiters--; f.waiters == 0 {
		f.cancel()
		// Out of the map, no Set or Delete could mark it stale: so it
		// stores nothing, if its loader returns a value all the same.
		f.stale.Store(true)
		l.unmap(key, f)
	}
}

// unmap takes flight f of key out of the map, if it is still there.
// Callers hold l.mu.
func (l *loader) unmap(key string, f *flight) {
	if l.flights[key] == f {
		delete(l.flights, key)
		l.inMap.Add(-1)
	}
}

// cancelAll cancels every load in flight and wakes their waiters, at Close.
func (l *loader) cancelAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing != nil && !l.closed {
		close(l.closing)
	}
	l.closed = true
	for _, f := range l.flights {
		f.cancel()
	}
}

func (l *loader) counts() (loads, errs int) { return int(l.loads.Load()), int(l.errs.Load()) }
