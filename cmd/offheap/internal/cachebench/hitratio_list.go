// The doubly linked lists the written-here baselines (sieve, s3fifo,
// opteryx-lruk) keep their entries in: nodes are slot indices into the
// baseline's own arrays, and links are int32, so a list costs two ints per
// slot and no allocation per operation.

package cachebench

// nilNode ends a list.
const nilNode int32 = -1

// links holds the links of nodes 0..n-1 for any number of lists; a node is
// in at most one of them at a time.
type links struct {
	newer, older []int32 // toward the head, toward the tail
}

// list is one list over a links: its head is the newest node, its tail the
// oldest.
type list struct {
	head, tail int32
	n          int
}

func newLinks(n int) links {
	return links{newer: make([]int32, n), older: make([]int32, n)}
}

func newList() list { return list{head: nilNode, tail: nilNode} }

// pushHead makes id, in no list, q's newest node.
func (l *links) pushHead(q *list, id int32) {
	l.newer[id], l.older[id] = nilNode, q.head
	if q.head != nilNode {
		l.newer[q.head] = id
	} else {
		q.tail = id
	}
	q.head = id
	q.n++
}

// remove takes id out of q.
func (l *links) remove(q *list, id int32) {
	nw, ol := l.newer[id], l.older[id]
	if nw != nilNode {
		l.older[nw] = ol
	} else {
		q.head = ol
	}
	if ol != nilNode {
		l.newer[ol] = nw
	} else {
		q.tail = nw
	}
	q.n--
}

// popTail takes q's oldest node out and returns it; q must not be empty.
func (l *links) popTail(q *list) int32 {
	id := q.tail
	l.remove(q, id)
	return id
}

// slots hands out the slot indices 0..n-1 of a baseline's arrays: first in
// order, then those given back.
type slots struct {
	next int32
	free []int32
}

func (s *slots) take() int32 {
	if k := len(s.free); k > 0 {
		id := s.free[k-1]
		s.free = s.free[:k-1]
		return id
	}
	s.next++
	return s.next - 1
}

func (s *slots) give(id int32) { s.free = append(s.free, id) }
