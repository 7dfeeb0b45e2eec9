// What a Checked allocator reports: the errors for a misused buffer with the
// call stacks of its allocation and release, turning a fault into such an
// error, and the table of call stacks behind them.

package arrowalloc

import (
	"cmp"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
)

// Errors a Checked allocator reports besides arena's (arena.ErrDoubleFree,
// arena.ErrForeign, arena.ErrLeaked, ...), wrapped in a *BufferError; test for
// them with errors.Is.
var (
	ErrUseAfterRelease = errors.New("use after release")               // an access to a buffer after Free or Reallocate released it
	ErrOverrun         = errors.New("access past the end of a buffer") // an access to the guard page after a buffer, or to an empty buffer
)

// stackDepth is the most frames a Checked allocator records of a call stack.
const stackDepth = 64

// Stack is a call stack as program counters, innermost first, as
// runtime.Callers returns it; runtime.CallersFrames turns it into frames.
type Stack []uintptr

// String formats the stack as a Go traceback does: a function per line, its
// file and line indented below it.
func (s Stack) String() string {
	if len(s) == 0 {
		return "\t(unknown)\n"
	}
	var b strings.Builder
	frames := runtime.CallersFrames(s)
	for {
		f, more := frames.Next()
		fmt.Fprintf(&b, "\t%s\n\t\t%s:%d\n", f.Function, f.File, f.Line)
		if !more {
			return b.String()
		}
	}
}

// BufferError reports a misuse of a Checked allocator's buffer: an access
// after its release or past its end (found by a fault), or a bad Free or
// Reallocate. It carries the call stacks of the misuse and of the buffer's
// allocation and release.
type BufferError struct {
	Op          string  // "access", "free" or "reallocate"
	Addr        uintptr // the address accessed, or the start of the slice freed
	Size        int     // size of the buffer Addr falls in; -1 if it falls in none
	Offset      int     // Addr's offset from that buffer's start (Size or more for an overrun)
	Err         error   // ErrUseAfterRelease, ErrOverrun, arena.ErrDoubleFree or arena.ErrForeign
	At          Stack   // where the misuse happened (for an access, the faulting code)
	Allocated   Stack   // where the buffer was allocated; nil if there is no buffer
	Released    Stack   // where it was released; nil while it is live
	Reallocated bool    // it was released by Reallocate (which moved it), not by Free
}

// Error says what was done to which buffer and what went wrong on the first
// line, then lists the call stacks.
func (e *BufferError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "arrowalloc: %s ", e.Op)
	switch {
	case e.Size < 0:
		fmt.Fprintf(&b, "at %#x", e.Addr)
	case e.Op == "access":
		fmt.Fprintf(&b, "to byte %d of a %d-byte buffer at %#x", e.Offset, e.Size, e.Addr-uintptr(e.Offset))
	default:
		fmt.Fprintf(&b, "of a %d-byte buffer at %#x", e.Size, e.Addr)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	b.WriteString("\n" + pastTense(e.Op) + " at:\n" + e.At.String())
	if e.Allocated != nil {
		b.WriteString("allocated at:\n" + e.Allocated.String())
	}
	if e.Released != nil {
		verb := "Free"
		if e.Reallocated {
			verb = "Reallocate"
		}
		b.WriteString("released by " + verb + " at:\n" + e.Released.String())
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Unwrap returns the sentinel.
func (e *BufferError) Unwrap() error { return e.Err }

func pastTense(op string) string {
	switch op {
	case "access":
		return "accessed"
	case "free":
		return "freed"
	}
	return op + "d"
}

// Run calls f and returns nil, or a *BufferError if f touched a buffer of c
// after its release or past its end. It turns such a fault of the calling
// goroutine into a panic (runtime/debug.SetPanicOnFault) and that panic into
// the error; any other panic goes on. A fault in another goroutine (one f
// starts) still kills the process: run that goroutine's work under Run too.
func (c *Checked) Run(f func()) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if err = c.Diagnose(r); err == nil {
				panic(r)
			}
		}
	}()
	f()
	return nil
}

// Diagnose returns a *BufferError for a panic value r that is a fault at an
// address of c's buffers (a runtime error with an Addr method, as
// debug.SetPanicOnFault raises), and nil for any other value. Called directly
// from the deferred function that recovered r, the error's At is the stack of
// the faulting code.
func (c *Checked) Diagnose(r any) error {
	f, ok := r.(interface{ Addr() uintptr })
	if !ok {
		return nil
	}
	a := f.Addr()
	if a < c.base || a-c.base >= uintptr(len(c.mem)) {
		return nil
	}
	at := faultStack()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.describe(a, at)
}

// faultStack returns the stack of the code that faulted, when called while
// a fault's panic unwinds: the frames below runtime.sigpanic.
func faultStack() Stack {
	pcs := make([]uintptr, 64+stackDepth)
	pcs = pcs[:runtime.Callers(2, pcs)]
	isSigpanic := func(pc uintptr) bool {
		fn := runtime.FuncForPC(pc)
		return fn != nil && fn.Name() == "runtime.sigpanic"
	}
	i := slices.IndexFunc(pcs, isSigpanic)
	if i < 0 {
		return nil
	}
	for i < len(pcs) && isSigpanic(pcs[i]) { // it can fill two entries
		i++
	}
	return pcs[i:min(len(pcs), i+stackDepth)]
}

// stacks interns call stacks, so a record holds a number and a program with
// few allocation sites pays for each stack once.
type stacks struct {
	ids  map[[stackDepth]uintptr]int32
	list [][stackDepth]uintptr // stack id i is list[i]
}

func (t *stacks) intern(pcs []uintptr) int32 {
	var k [stackDepth]uintptr
	copy(k[:], pcs)
	if id, ok := t.ids[k]; ok {
		return id
	}
	if t.ids == nil {
		t.ids = make(map[[stackDepth]uintptr]int32)
	}
	id := int32(len(t.list))
	t.ids[k] = id
	t.list = append(t.list, k)
	return id
}

func (t *stacks) stack(id int32) Stack {
	k := &t.list[id]
	n := len(k)
	for n > 0 && k[n-1] == 0 {
		n--
	}
	return slices.Clone(k[:n])
}

// callers records the stack of the caller of the exported method that calls
// it (skip 0: that method's caller).
func callers(buf *[stackDepth]uintptr, skip int) []uintptr {
	return buf[:runtime.Callers(skip+3, buf[:])]
}

// leakReport lists the live buffers grouped by allocation site, most bytes
// first, at most maxSites of them. Callers hold c.mu.
func (c *Checked) leakReport(maxSites int) string {
	type site struct {
		id           int32
		count, bytes int
	}
	byID := map[int32]*site{}
	for _, r := range c.recs {
		if r.released {
			continue
		}
		s := byID[r.alloc]
		if s == nil {
			s = &site{id: r.alloc}
			byID[r.alloc] = s
		}
		s.count++
		s.bytes += r.size
	}
	sites := make([]*site, 0, len(byID))
	for _, s := range byID {
		sites = append(sites, s)
	}
	slices.SortFunc(sites, func(a, b *site) int {
		return cmp.Or(cmp.Compare(b.bytes, a.bytes), cmp.Compare(a.id, b.id))
	})
	var b strings.Builder
	for i, s := range sites {
		if i == maxSites {
			fmt.Fprintf(&b, "and %d more sites\n", len(sites)-i)
			break
		}
		fmt.Fprintf(&b, "%d buffers (%d bytes) allocated at:\n%s", s.count, s.bytes, c.stacks.stack(s.id))
	}
	return strings.TrimSuffix(b.String(), "\n")
}
