// A stand-in eviction policy, FIFO, with the method set of the contract in
// CACHE_CONTRACT.md; policy.go replaces it.

package cache

import "fmt"

// policy evicts in insertion order. Its metadata, a doubly linked list over
// entry ids, lives in an off-heap table.
type policy struct {
	nodes      offTable[pnode]
	head, tail uint32
	total      int64
}

type pnode struct {
	prev, next uint32
	parked     uint32 // 1 while parked
	_          uint32
	weight     int64
}

func (p *policy) init(budget int64, maxEntries uint32) error {
	p.head, p.tail = noID, noID
	if err := p.nodes.reserve(uint64(maxEntries), "cache policy"); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}

func (p *policy) free()                    { p.nodes.close() }
func (p *policy) setBudget(int64)          {}
func (p *policy) hit(uint32)               {}
func (p *policy) miss(uint64)              {}
func (p *policy) admit(uint64, int64) bool { return true }
func (p *policy) used() int64              { return p.total }
func (p *policy) parked(id uint32) bool    { return p.nodes.at(uint64(id)).parked == 1 }

func (p *policy) add(id uint32, _ uint64, weight int64) {
	_ = p.nodes.grow(uint64(id) + 1)
	n := p.nodes.at(uint64(id))
	n.weight, n.parked = weight, 0
	p.total += weight
	p.link(id)
}

func (p *policy) remove(id uint32) {
	n := p.nodes.at(uint64(id))
	p.total -= n.weight
	if n.parked == 1 {
		n.parked = 0
		return
	}
	p.unlink(id)
}

func (p *policy) victim(pinned func(id uint32) bool) (uint32, bool) {
	for p.head != noID {
		id := p.head
		if !pinned(id) {
			return id, true
		}
		p.unlink(id)
		p.nodes.at(uint64(id)).parked = 1
	}
	return 0, false
}

func (p *policy) unpark(id uint32) {
	p.nodes.at(uint64(id)).parked = 0
	p.link(id)
}

func (p *policy) link(id uint32) {
	n := p.nodes.at(uint64(id))
	n.prev, n.next = p.tail, noID
	if p.tail != noID {
		p.nodes.at(uint64(p.tail)).next = id
	} else {
		p.head = id
	}
	p.tail = id
}

func (p *policy) unlink(id uint32) {
	n := p.nodes.at(uint64(id))
	if n.prev != noID {
		p.nodes.at(uint64(n.prev)).next = n.next
	} else {
		p.head = n.next
	}
	if n.next != noID {
		p.nodes.at(uint64(n.next)).prev = n.prev
	} else {
		p.tail = n.prev
	}
}
