// The policy's ghost: the recently evicted keys (hashes only), with what the
// policy needs to judge its decisions when one of them comes back.

package cache

import "github.com/offheap/offheap/vmem"

// ghost remembers, for about as many recently evicted keys as the cache
// holds, how each left (a window candidate that lost admission, or a main
// entry evicted for a candidate), its place in its queue's exit order, and
// when it was last used. It is a set-associative table: 4 slots per 64-byte
// bucket, a new key replacing the bucket's oldest slot; a lost or stale slot
// only costs the policy one observation. Only the policy's locked methods
// touch it.
//
// Invariants: buckets is a power of two, buckets <= len(table); only
// table[:buckets] is touched; a slot with tag 0 is empty.
type ghost struct {
	region  *vmem.Region
	table   []ghostBucket // the whole reservation; table[:buckets] is ready
	buckets uint64
	max     uint64
}

type ghostBucket [ghostWays]ghostSlot

// ghostSlot is one remembered key. seq is the key's number in its queue's
// exit order; stamp is the policy clock at its last known use; at is the
// policy clock when it left (for replacing the oldest slot).
type ghostSlot struct {
	tag   uint32 // high half of the key hash, never 0
	seq   uint32 // exit number, with ghostMain set if it left the main space
	stamp uint32
	at    uint32
}

const (
	ghostWays      = 4
	ghostMain      = 1 << 31
	ghostMinBucket = 1024 // 64 KiB
)

// init reserves a ghost able to remember about maxEntries keys.
func (g *ghost) init(maxEntries uint64) error {
	g.max = max(nextPow2(maxEntries)/ghostWays, ghostMinBucket)
	r, err := vmem.Reserve(int(g.max)*sizeOf[ghostBucket](), &vmem.Options{Name: "cache policy ghost"})
	if err != nil {
		return err
	}
	if err := r.Grow(ghostMinBucket * sizeOf[ghostBucket]()); err != nil {
		_ = r.Close()
		return err
	}
	g.region, g.table, g.buckets = r, policyTable[ghostBucket](r, int(g.max)), ghostMinBucket
	return nil
}

func ghostTag(h uint64) uint32 { return uint32(h>>32) | 1 }

func (g *ghost) bucket(h uint64) *ghostBucket { return &g.table[h&(g.buckets-1)] }

// take returns and forgets the slot of h, if h is remembered.
func (g *ghost) take(h uint64) (ghostSlot, bool) {
	b, tag := g.bucket(h), ghostTag(h)
	for i := range b {
		if b[i].tag == tag {
			s := b[i]
			b[i] = ghostSlot{}
			return s, true
		}
	}
	return ghostSlot{}, false
}

// put remembers h, replacing h's old slot, an empty one, or the oldest.
func (g *ghost) put(h uint64, seq, stamp, now uint32) {
	b, tag := g.bucket(h), ghostTag(h)
	victim := 0
	for i := range b {
		if b[i].tag == tag {
			victim = i
			break
		}
		if b[victim].tag != 0 && (b[i].tag == 0 || now-b[i].at > now-b[victim].at) {
			victim = i
		}
	}
	b[victim] = ghostSlot{tag: tag, seq: seq, stamp: stamp, at: now}
}

// resize sizes the ghost for entries keys, forgetting everything when the
// size changes (the bucket of a key changes with it) and giving memory back
// when it shrinks.
func (g *ghost) resize(entries uint64) {
	want := min(max(nextPow2(entries)/ghostWays, ghostMinBucket), g.max)
	if want <= g.buckets && want*4 > g.buckets {
		return
	}
	size := sizeOf[ghostBucket]()
	lo, hi := int(min(want, g.buckets))*size, int(max(want, g.buckets))*size
	if want > g.buckets && (g.region.Grow(hi) != nil || g.region.Reuse(lo, hi-lo) != nil) {
		return
	}
	if want < g.buckets {
		_ = g.region.Release(lo, hi-lo)
	}
	g.buckets = want
	clear(g.table[:want])
}
