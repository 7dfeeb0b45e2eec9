// The checked build's invariant checks of the policy (see the invariants on
// policy).

package cache

import (
	"fmt"

	"github.com/offheap/offheap/internal/check"
)

// verifySometimes verifies the invariants in the checked build: after every
// mutation while the policy holds at most 256 entries, else on a countdown
// of as many mutations as it holds entries, so the checked build stays
// amortized O(1) per operation. Callers hold the lock.
func (p *policy) verifySometimes() {
	if !check.On {
		return
	}
	if p.untilVerify--; p.count <= 256 || p.untilVerify <= 0 {
		p.untilVerify = p.count
		if err := p.verify(); err != nil {
			check.Invariant(false, "cache policy: %v", err)
		}
	}
}

// verify walks every list and reports the first broken invariant.
func (p *policy) verify() error {
	var total, held int64
	for l := uint32(window); l <= numLists; l++ {
		var sum int64
		prev := l - 1
		for n := p.ents[l-1].next; n != l-1; n = p.ents[n].next {
			e := &p.ents[n]
			switch {
			case e.prev != prev:
				return fmt.Errorf("list %d: entry %d: prev %d, want %d", l, n-numLists, e.prev, prev)
			case listOf(e) != l:
				return fmt.Errorf("list %d: entry %d says it is in list %d", l, n-numLists, listOf(e))
			case l != parked && homeOf(e) != l:
				return fmt.Errorf("list %d: entry %d has home %d", l, n-numLists, homeOf(e))
			case e.state&chanceBit != 0 && l != probation && l != protected:
				return fmt.Errorf("list %d: entry %d marked for the gate", l, n-numLists)
			}
			sum += weightOf(e)
			held++
			prev = n
			if held > p.count {
				return fmt.Errorf("more entries in lists than the %d held", p.count)
			}
		}
		if p.ents[l-1].prev != prev {
			return fmt.Errorf("list %d: tail %d, want %d", l, p.ents[l-1].prev, prev)
		}
		if sum != p.lists[l-1] {
			return fmt.Errorf("list %d weighs %d, counted %d", l, sum, p.lists[l-1])
		}
		total += sum
	}
	if total > p.weight {
		return fmt.Errorf("lists weigh %d, more than the %d held", total, p.weight)
	}
	if p.fits > p.budget {
		return fmt.Errorf("fits %d over the budget %d", p.fits, p.budget)
	}
	if p.window < 1 || p.window > max(p.budget, 1) {
		return fmt.Errorf("window target %d outside [1, %d]", p.window, p.budget)
	}
	return nil
}
