// Package growth is the workload of growing memory that holds N touched bytes
// to 2N: in place in a vmem region (offheap's way), by mremap (QuestDB's way,
// the address may move) or by mapping anew and copying. The vmem package's Go
// benchmarks and the vmem suite of `offheap bench` run the same Grower.
package growth

import (
	"fmt"
	"time"

	"github.com/offheap/offheap/vmem"
)

// Impls are the growth implementations, offheap's first.
var Impls = []string{"inplace", "mremap", "copy"}

// Grower holds N touched bytes, ready to be grown to 2N by one implementation.
type Grower struct {
	impl string
	n    int
	r    *vmem.Region // inplace
	b    []byte       // mremap, copy
}

// NewGrower maps n bytes the way impl does and touches every page.
func NewGrower(impl string, n int) (*Grower, error) {
	g := &Grower{impl: impl, n: n}
	var err error
	switch impl {
	case "inplace":
		if g.r, err = vmem.Reserve(2*n, &vmem.Options{Name: "growth"}); err == nil {
			if err = g.r.Grow(n); err == nil {
				touch(g.r.Bytes())
			}
		}
	case "mremap", "copy":
		if g.b, err = MapAnon(n); err == nil {
			touch(g.b)
		}
	default:
		return nil, fmt.Errorf("growth: unknown impl %q", impl)
	}
	if err != nil {
		_ = g.Close()
		return nil, err
	}
	return g, nil
}

// touch writes one byte in every page, so each is resident.
func touch(b []byte) {
	for i := 0; i < len(b); i += vmem.PageSize() {
		b[i] = 1
	}
}

// Grow grows the memory from n to 2n bytes: the operation being timed.
func (g *Grower) Grow() error {
	var err error
	switch g.impl {
	case "inplace":
		return g.r.Grow(2 * g.n)
	case "mremap":
		g.b, err = GrowRemap(g.b, 2*g.n)
	case "copy":
		g.b, err = GrowCopy(g.b, 2*g.n)
	}
	return err
}

// Close unmaps the memory.
func (g *Grower) Close() error {
	if g.r != nil {
		return g.r.Close()
	}
	if g.b != nil {
		return Unmap(g.b)
	}
	return nil
}

// GrowOnce builds a Grower, times its Grow and closes it.
func GrowOnce(impl string, n int) (time.Duration, error) {
	g, err := NewGrower(impl, n)
	if err != nil {
		return 0, err
	}
	defer g.Close()
	start := time.Now()
	if err := g.Grow(); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
