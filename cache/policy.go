// The cache's eviction and admission policy: which entry leaves when room is
// needed, and whether a new entry may push an old one out.

package cache

import (
	"fmt"
	"math"
	"sync/atomic"

	"github.com/offheap/offheap/internal/check"
	"github.com/offheap/offheap/internal/fence"
	"github.com/offheap/offheap/internal/proc"
	"github.com/offheap/offheap/vmem"
)

// policy decides what the cache evicts. It is W-TinyLFU (a small admission
// window in front of a segmented main space, with a frequency sketch judging
// who may enter the main space) built on CLOCK queues, so that a hit only
// sets a counter, and made adaptive by watching its own mistakes.
//
// # Queues
//
// A new entry enters the window, a FIFO with second chances (CLOCK): an entry
// hit while in the window goes round again. When the window is over its
// target, its oldest unreferenced entry becomes the candidate, and the main
// space's victim is found by CLOCK over two segments, as in SLRU: probation,
// where entries arrive from the window, and protected (80% of the main space),
// where a probation entry goes when it was hit. The candidate and the victim
// duel: the candidate enters probation and the victim is evicted only if the
// sketch has seen the candidate more often (TinyLFU), not counting the miss
// that brought the candidate in; otherwise the candidate is evicted. That
// miss is left out because the comparison is otherwise biased: the
// candidate is judged just after a use, the victim at any point between
// two of its uses, so of two keys used equally often the candidate counts
// one more. On a sweep back and forth over keys used equally often, the
// victims not yet reached in this sweep always count one less than the keys
// just passed, and a duel counting that miss evicts each key just before
// its use (replayed by the policy over the LIRS sweep traces, 2.9% hits
// against LRU's 36.7% on backf with 300 entries). Ties keep the victim, so a
// loop larger than the cache keeps a stable part of itself instead of
// cycling through everything. As in Caffeine, a candidate seen 6 times or
// more wins a lost duel with probability 1/128, so an attacker cannot keep
// a hot key out by flooding.
//
// The budget is what the cache may hold, not always what it can: when its
// pool's free space is in pieces too small for what comes, or other users
// of a shared pool hold the rest, the cache needs victims while under
// budget. The policy then takes the weight it held when it last needed one
// (fits) as its size: the window's overflow beyond it duels, as it would at
// the budget, and protected's share is of it. Without that, a cache of
// entries of mixed sizes, holding 78-85% of its budget, let every new entry
// into probation unopposed and kept protected at 80% of a budget it never
// reached: on a recency trace with values of 20 to 4,000 bytes, 20.6% hits
// at 1 MiB against 68.8% for an LRU bounded by the same bytes (64.2% now).
//
// # Adaptivity
//
// No fixed split suits every workload: a small window suits frequency-skewed
// and looping workloads, a large one recency-friendly ones (at 100% the
// policy is CLOCK, close to LRU). The policy sizes the window from two kinds
// of evidence about its own evictions, kept in the ghost (hashes of recently
// evicted keys, with how they left):
//
//   - A rejected candidate comes back soon after leaving, among the last 5%
//     of the cache's worth of rejections: a larger window would have kept it,
//     so this counts for growing the window. It counts only if it also comes
//     back within one cache's worth of the policy clock since its last use,
//     that is, when LRU of the same size would have had it; re-references
//     farther apart than the cache (loops, scans) say nothing about the
//     window, which keeps loops from growing it.
//   - A main victim comes back among the last 5% of the cache's worth of main
//     evictions: a larger main space would have kept it, so this counts for
//     shrinking the window.
//
// A margin of 5% is at least 4 exits: in a cache of under 80 entries 5% is
// less than one, and only a key coming back right after the last exit would
// count (a recency trace at 8 entries kept the window at one entry and got
// 34.8% hits against LRU's 55.9%; 50.1% with the floor).
//
// Both counts measure hits lost per unit of space at the margin of each part,
// which is what should be equal when the split is right (as ARC balances its
// two lists, but with time-bounded evidence and a frequency filter in front).
// After every eviction the policy compares them (halved after every move and
// every two cache-sizes of evictions, so old evidence fades); when one exceeds
// the other by two standard deviations (z > 2 on their Poisson counts), the
// window target moves by 1% of the budget in its favour. It starts at 1%, as
// in Caffeine, and may take anything from one entry to the whole budget.
//
// The same evidence gives a second chance: a rejected candidate that comes
// back within the LRU horizon passes its next duel unconditionally, since it
// has shown a reuse distance LRU would have served. A second chance costs
// the victim it evicts, so it is granted only while it pays: the policy
// counts, among the entries that reach probation's tail, how many were hit
// there, separately for those a second chance let in and for the rest, and
// grants none while the former are hit significantly less often (z < -2 on
// the two proportions, once the chanced entries would have been hit 5 times
// at the others' rate; the counts fade with the window's evidence). On a
// sweep back and forth, a key that comes back within the horizon at a turn
// is next used only at the following turn, and every second chance evicted
// a key the sweep was about to reach.
//
// The policy clock counts insertions and the first hit on an entry since the
// CLOCK last passed it, so it advances about once per distinct key used, and
// "within one cache's worth of the clock" approximates "within LRU's stack
// distance" even when most requests are hits.
//
// # Concurrency and memory
//
// hit and miss run concurrently with everything and take no lock. The
// 2-bit CLOCK counters are packed 32 to a word in a table of their own (8
// KiB per 256Ki entries), which stays in the processor's caches where the
// entries would not; so a hit on an entry whose counter is at its maximum
// (every hot entry, most of the time) costs one load that hits in cache,
// and writes nothing. A hit below it raises the counter with a
// compare-and-swap, ticks the policy clock when it was 0 (so the shared
// clock is written about as often as the locked side clears counters, not
// once per hit), and counts the key in the sketch with one more. So the
// sketch counts a key's misses and the hits that found its counter below
// the maximum: its uses per CLOCK round, at most three, rather than every
// hit. That judges keys a little more by recency; replayed by the policy
// over 84 trace points, it raised the mean hit ratio and lowered none by
// more than half a point. A reader raises the counter of the id it found
// after validating what it read, so a raise may land just after the id
// was removed and given to another key: that entry then starts with one
// use, which costs a little precision and nothing else. Everything else
// runs under the cache's write lock.
// Entry metadata, the sketch and the ghost live in vmem regions, outside
// the Go heap and free of Go pointers; the policy's own Go object is a fixed
// size. Pinned entries are parked in their own list in O(1) and never
// returned by victim; unpark puts them back. Steady-state operations allocate
// nothing.
//
// # Invariants
//
// Checked in the offheapcheck build (see verify):
//   - every entry added and not removed is in exactly one of the lists window,
//     probation, protected, staged, parked, or is leaving (returned by victim,
//     not yet removed); lists[l] is the sum of the weights of the entries in
//     list l, and weight is the sum over all of them plus the leaving ones;
//   - count is the number of entries added and not removed;
//   - 0 <= window <= budget; the window list holds at most one entry more than
//     its target when the cache is within fits (balanceWindow);
//   - fits <= budget;
//   - an entry's home is the list it returns to when unparked;
//   - only entries in probation or protected carry chanceBit.
type policy struct {
	// Read by hits, written only by init and resizes.
	ents   []pentry // sentinels of the lists, then entry id i at index i+numLists
	refs   []uint64 // entry id i's CLOCK counter: bits 2(i%32) and up of refs[i/32]
	sk     sketch
	_      [64]byte
	counts hitCounts // what hits count (padded)

	// The rest is for the locked methods.
	region   *vmem.Region // ents
	refsMem  *vmem.Region // refs
	gh       ghost
	ticks    uint64 // clock ticks of the locked side (insertions)
	agedAdds int64  // sketch increments accounted for by past agings

	budget, weight int64
	count          int64
	lists          [numLists]int64 // weight per list (index: list - 1)
	window         int64           // target weight of the window list
	pending        int64           // the weight admit just allowed; add clears it
	rejects        uint32          // exit numbers (31 bits) of rejected candidates
	evictions      uint32          // and of main victims
	tune           tuner
	fits           int64 // the weight the cache fits: the budget, or what it held when it last needed a victim
	chances        gate
	rnd            uint64
	untilVerify    int64 // mutations until the checked build verifies
}

// pentry is one entry's metadata (32 bytes, no Go pointers).
type pentry struct {
	hash  uint64 // written by add, read by hits: atomic
	state uint64 // weight<<stateBits | pass | home<<3 | list; stored with fence.StoreRelease (parked reads it lock-free)
	prev  uint32
	next  uint32
	stamp uint32 // policy clock at the entry's last use the policy knows of
}

// Lists; free (the zero value) is an entry the policy does not hold.
const (
	free = iota
	window
	probation
	protected
	staged // window overflow that arrived over budget, first in line to duel
	parked
	leaving  // returned by victim, awaiting remove
	numLists = parked

	listMask  = 7
	passBit   = 1 << 6  // a window entry's second chance
	mainBit   = passBit // a leaving entry leaves the main space
	chanceBit = 1 << 7  // a main entry a second chance let in, not yet judged by the gate
	stateBits = 8
	maxRef    = 3
	maxWeight = 1<<(64-stateBits) - 1

	// Tuning (see the type's comment): constants of the method, not of traces.
	initialWindow = 100 // 1/100 of the budget
	windowStep    = 100 // 1/100 of the budget
	protectedPart = 0.8 // of the main space
	marginPart    = 20  // a margin is 1/20 of the entries
	minMargin     = 4   // and at least 4 exits, or a cache of under 80 entries gathers no evidence
	moveGap       = 33  // evictions between window moves: 1/33 of the entries
	decayEvery    = 2   // halve the evidence every 2 entries' worth of evictions
	zMove         = 2.0
	gateMinHits   = 5 // hits expected of the chanced entries before the gate may close
	hotFrequency  = 6
)

// tuner holds the evidence for moving the window (see policy).
type tuner struct {
	windowGain, mainGain  float64
	sinceMove, sinceDecay int64
}

// gate decides whether second chances are granted (see policy). It counts
// the entries judged at probation's tail, and of them those hit in
// probation, for entries a second chance let in and for the others.
type gate struct {
	chanced, chancedHit float64
	others, othersHit   float64
}

// judged counts an entry judged at probation's tail: hit, or evicted.
func (g *gate) judged(chanced, hit bool) {
	n, h := &g.others, &g.othersHit
	if chanced {
		n, h = &g.chanced, &g.chancedHit
	}
	*n++
	if hit {
		*h++
	}
}

// open reports whether second chances are granted: unless the chanced
// entries are hit significantly less often than the others.
func (g *gate) open() bool {
	if g.others == 0 || g.chanced*g.othersHit/g.others < gateMinHits {
		return true
	}
	rc, ro := g.chancedHit/g.chanced, g.othersHit/g.others
	all := (g.chancedHit + g.othersHit) / (g.chanced + g.others)
	se := math.Sqrt(all * (1 - all) * (1/g.chanced + 1/g.others))
	return se == 0 || (rc-ro)/se >= -zMove
}

func (g *gate) halve() { *g = gate{g.chanced / 2, g.chancedHit / 2, g.others / 2, g.othersHit / 2} }

// init reserves metadata for ids [0, maxEntries) and sets the budget.
func (p *policy) init(budget int64, maxEntries uint32) (err error) {
	defer func() {
		if err != nil {
			p.free()
			err = fmt.Errorf("cache: policy: %w", err)
		}
	}()
	n := int(maxEntries) + numLists
	if p.region, err = vmem.Reserve(n*sizeOf[pentry](), &vmem.Options{Name: "cache policy"}); err != nil {
		return err
	}
	// Ready in full: it costs address space only until entries are touched.
	if err = p.region.Grow(n * sizeOf[pentry]()); err != nil {
		return err
	}
	words := int(maxEntries)/refsPerWord + 1
	if p.refsMem, err = vmem.Reserve(words*8, &vmem.Options{Name: "cache policy counters"}); err != nil {
		return err
	}
	if err = p.refsMem.Grow(words * 8); err != nil {
		return err
	}
	if err = p.sk.init(uint64(maxEntries)); err != nil {
		return err
	}
	if err = p.gh.init(uint64(maxEntries)); err != nil {
		return err
	}
	if err = p.counts.init(); err != nil {
		return err
	}
	p.ents, p.refs = policyTable[pentry](p.region, n), policyTable[uint64](p.refsMem, words)
	for l := uint32(window); l <= numLists; l++ {
		s := &p.ents[l-1]
		s.prev, s.next = l-1, l-1
	}
	p.budget, p.fits = budget, budget
	p.window = max(budget/initialWindow, 1)
	p.rnd = 0x9e3779b97f4a7c15
	return nil
}

// free gives the metadata back. The policy must not be used afterwards, and
// no hit or miss may be in flight (the cache waits for them with
// proc.Quiesce). free writes none of the fields hits read, so a hit the race
// detector saw before the wait (which it cannot see) is no race to it.
func (p *policy) free() { closeRegions(p.regions()) }

// regions returns the memory free gives back (those made so far), for a
// cleanup: unlike the policy, it reaches no Go memory of the cache's.
func (p *policy) regions() []*vmem.Region {
	return []*vmem.Region{p.sk.region, p.gh.region, p.counts.region, p.refsMem, p.region}
}

// closeRegions closes the regions that are not nil.
func closeRegions(rs []*vmem.Region) {
	for _, r := range rs {
		if r != nil {
			_ = r.Close()
		}
	}
}

// setBudget changes the budget, keeping the window's share of it.
func (p *policy) setBudget(budget int64) {
	if p.budget > 0 {
		p.window = int64(float64(p.window) * float64(budget) / float64(p.budget))
	}
	p.budget = budget
	p.window = min(max(p.window, 1), max(budget, 1))
	p.fits = budget
}

// hit records a hit on entry id, whose key's hash is hash: it raises the
// entry's CLOCK counter unless the counter is at its maximum, and counts a
// raise (see policy). Lock-free.
func (p *policy) hit(id uint32, hash uint64) {
	if uint64(id)/refsPerWord >= uint64(len(p.refs)) {
		return // no id the cache gave out
	}
	r, shift := p.ref(id + numLists)
	for {
		w := atomic.LoadUint64(r)
		c := w >> shift & maxRef
		if c == maxRef {
			return
		}
		if atomic.CompareAndSwapUint64(r, w, w+1<<shift) {
			pid := proc.Pin()
			p.counts.note(pid, c == 0, p.sk.increment(hash))
			proc.Unpin()
			return
		}
	}
}

// refsPerWord is the number of CLOCK counters a word of refs holds.
const refsPerWord = 32

// ref returns the word holding list node n's CLOCK counter, and where in it.
func (p *policy) ref(n uint32) (*uint64, uint64) {
	id := n - numLists
	return &p.refs[id/refsPerWord], uint64(id%refsPerWord) * 2
}

// refOf returns node n's CLOCK counter.
func (p *policy) refOf(n uint32) uint64 {
	r, shift := p.ref(n)
	return atomic.LoadUint64(r) >> shift & maxRef
}

// clearRef sets node n's CLOCK counter to 0. Callers hold the lock; hits
// may raise it (or its neighbours) meanwhile, hence the compare-and-swap.
func (p *policy) clearRef(n uint32) {
	r, shift := p.ref(n)
	for {
		w := atomic.LoadUint64(r)
		if w>>shift&maxRef == 0 || atomic.CompareAndSwapUint64(r, w, w&^(maxRef<<shift)) {
			return
		}
	}
}

// bytes returns the policy's memory in use when entry ids below ids have
// been used: their metadata, the sketch, the ghost and the per-P counts
// (their reservations are larger, but untouched or given back beyond this).
// Callers hold the cache's lock.
func (p *policy) bytes(ids uint32) int {
	return pagesOf((int(ids)+numLists)*sizeOf[pentry]()) + pagesOf(int(ids)/refsPerWord*8+8) + int(p.sk.width.Load())*8 +
		int(p.gh.buckets)*sizeOf[ghostBucket]() + p.counts.region.Len()
}

// miss records a lookup of an absent key. Lock-free.
func (p *policy) miss(hash uint64) {
	pid := proc.Pin()
	p.counts.note(pid, false, p.sk.increment(hash))
	proc.Unpin()
}

// clock returns the policy clock (see policy), to within the counts' lag.
func (p *policy) clock() uint64 { return p.ticks + p.counts.ticks.Load() }

// admit reports whether an entry of weight may come in: any that fits the
// budget may (admission proper happens at the window's exit).
func (p *policy) admit(hash uint64, weight int64) bool {
	if weight < 0 || weight > p.budget || weight > maxWeight {
		return false
	}
	p.pending = weight
	return true
}

// add takes in a new entry: it enters the window.
func (p *policy) add(id uint32, hash uint64, weight int64) {
	n := id + numLists
	e := &p.ents[n]
	check.Invariant(listOf(e) == free, "cache policy: add of id %d, which it holds", id)
	p.ticks++
	now := uint32(p.clock())
	fence.StoreRelease(&e.hash, hash)
	p.clearRef(n)
	e.stamp = now
	pass := false
	if s, ok := p.gh.take(hash); ok {
		pass = p.judge(s, now)
	}
	p.count++
	p.weight += weight
	p.pending = 0
	setState(e, weight, window, window, flagIf(pass, passBit))
	p.link(window, n)
	p.balanceWindow()
	p.maintain()
	p.verifySometimes()
}

// remove takes id out, whatever list it is in; an entry victim returned is
// remembered in the ghost as evicted.
func (p *policy) remove(id uint32) {
	n := id + numLists
	e := &p.ents[n]
	l := listOf(e)
	if l == free {
		check.Invariant(false, "cache policy: remove of id %d, which it does not hold", id)
		return
	}
	if l == leaving {
		p.remember(n)
	} else {
		p.unlink(n)
	}
	p.weight -= weightOf(e)
	p.count--
	fence.StoreRelease(&e.state, 0)
	p.maintain()
	p.verifySometimes()
}

// victim returns the next entry to evict; pinned entries met on the way are
// parked. ok is false when no unpinned entry is left.
func (p *policy) victim(pinned func(id uint32) bool) (id uint32, ok bool) {
	p.fits = min(p.weight+p.pending, p.budget)
	for {
		n, fromMain, ok := p.choose()
		if !ok {
			return 0, false
		}
		if pinned(n - numLists) {
			p.park(n)
			// An unpin between the call and the park saw the entry unparked
			// and left it to us: look again now that it is parked.
			if !pinned(n - numLists) {
				p.unparkNode(n)
			}
			continue
		}
		if fromMain {
			p.judged(n, false)
		}
		p.leave(n, fromMain)
		return n - numLists, true
	}
}

// unpark puts a parked entry back into the eviction order; so it does with
// an entry victim returned that the cache then found pinned after all.
func (p *policy) unpark(id uint32) {
	n := id + numLists
	switch listOf(&p.ents[n]) {
	case parked:
		p.unparkNode(n)
	case leaving:
		e := &p.ents[n]
		home := homeOf(e)
		setState(e, weightOf(e), home, home, 0)
		p.link(home, n)
		p.verifySometimes()
	}
}

// parked reports whether id is parked. Lock-free.
func (p *policy) parked(id uint32) bool { return listOf(&p.ents[id+numLists]) == parked }

// used returns the sum of the weights of the entries held, parked included.
func (p *policy) used() int64 { return p.weight }

// choose picks the entry to evict (see policy): the loser of the duel between
// the window's candidate and the main space's victim when the window is full,
// else the main victim, else the window's oldest. fromMain tells which.
func (p *policy) choose() (n uint32, fromMain, ok bool) {
	p.balanceWindow()
	c, isCand := p.tail(staged)
	if !isCand && p.lists[window-1]+p.pending > p.window && p.mainWeight() > 0 {
		c, isCand = p.windowCandidate()
	}
	if isCand {
		v, ok := p.mainVictim()
		if !ok {
			return c, false, true
		}
		if p.secondChance(c) || p.duel(c, v) {
			p.move(probation, c)
			return v, true, true
		}
		return c, false, true
	}
	if v, ok := p.mainVictim(); ok {
		return v, true, true
	}
	c, ok = p.windowCandidate()
	return c, false, ok
}

func (p *policy) mainWeight() int64 { return p.lists[probation-1] + p.lists[protected-1] }

// balanceWindow moves the window's overflow out, keeping its newest entry:
// into probation while the cache is within fits (nothing needs to leave),
// else into staged, to duel for its place.
func (p *policy) balanceWindow() {
	for p.lists[window-1] > p.window {
		c, ok := p.windowCandidate()
		if !ok || c == p.ents[window-1].next {
			return
		}
		if p.weight <= p.fits {
			p.move(probation, c)
		} else {
			p.move(staged, c)
		}
	}
}

// windowCandidate returns the window's oldest unreferenced entry, giving
// referenced ones one more round (however often they were hit).
func (p *policy) windowCandidate() (uint32, bool) {
	for {
		c, ok := p.tail(window)
		if !ok || !p.passed(c) {
			return c, ok
		}
		p.clearRef(c)
		p.move(window, c)
	}
}

// mainVictim returns probation's oldest unreferenced entry; referenced ones
// are promoted to protected, and protected's overflow is demoted to make room.
func (p *policy) mainVictim() (uint32, bool) {
	for {
		t, ok := p.tail(probation)
		if !ok {
			if t, ok = p.tail(protected); !ok {
				return 0, false
			}
			p.move(probation, t)
			continue
		}
		if !p.passed(t) {
			return t, true
		}
		p.judged(t, true)
		p.clearRef(t)
		p.move(protected, t)
		p.balanceProtected()
	}
}

// balanceProtected demotes protected's oldest unreferenced entries to
// probation until protected is within its share of the main space.
func (p *policy) balanceProtected() {
	limit := int64(protectedPart * float64(p.fits-p.window))
	for p.lists[protected-1] > limit {
		t, ok := p.tail(protected)
		if !ok {
			return
		}
		if p.passed(t) {
			p.move(protected, t)
		} else {
			p.move(probation, t)
		}
	}
}

// passed is the CLOCK hand passing n: if n was hit since the last pass, its
// counter drops by one, its stamp becomes now, and it reports true.
func (p *policy) passed(n uint32) bool {
	r, shift := p.ref(n)
	for {
		w := atomic.LoadUint64(r)
		if w>>shift&maxRef == 0 {
			return false
		}
		if atomic.CompareAndSwapUint64(r, w, w-1<<shift) {
			p.ents[n].stamp = uint32(p.clock())
			return true
		}
	}
}

// secondChance reports whether candidate c enters main without a duel: it
// holds a second chance and the gate grants it. c is then marked for the
// gate to judge.
func (p *policy) secondChance(c uint32) bool {
	e := &p.ents[c]
	if e.state&passBit == 0 || !p.chances.open() {
		return false
	}
	fence.StoreRelease(&e.state, e.state|chanceBit)
	return true
}

// judged tells the gate that main entry n reached probation's tail and was
// hit there (it goes to protected) or not (it is evicted), if n was not
// judged since it came in.
func (p *policy) judged(n uint32, hit bool) {
	e := &p.ents[n]
	chanced := e.state&chanceBit != 0
	if chanced {
		fence.StoreRelease(&e.state, e.state&^chanceBit)
	}
	p.chances.judged(chanced, hit)
}

// duel reports whether candidate c beats victim v for a place in main
// (see policy).
func (p *policy) duel(c, v uint32) bool {
	fc := p.sk.frequency(atomic.LoadUint64(&p.ents[c].hash))
	fv := p.sk.frequency(atomic.LoadUint64(&p.ents[v].hash))
	if fc-1 > fv { // the candidate's miss not counted
		return true
	}
	if fc >= hotFrequency {
		p.rnd ^= p.rnd << 13
		p.rnd ^= p.rnd >> 7
		p.rnd ^= p.rnd << 17
		return p.rnd&127 == 0
	}
	return false
}

// leave takes n out of its list for eviction; remove will record it in the
// ghost, unpark would put it back. The main bit of its state says which
// space it leaves.
func (p *policy) leave(n uint32, fromMain bool) {
	e := &p.ents[n]
	home := listOf(e)
	if home == staged {
		home = window
	}
	p.unlink(n)
	setState(e, weightOf(e), leaving, home, flagIf(fromMain, mainBit))
}

// remember records evicted n in the ghost and lets the tuner see the
// eviction.
func (p *policy) remember(n uint32) {
	e := &p.ents[n]
	var seq uint32
	if e.state&mainBit != 0 {
		p.evictions = (p.evictions + 1) &^ ghostMain
		seq = p.evictions | ghostMain
	} else {
		p.rejects = (p.rejects + 1) &^ ghostMain
		seq = p.rejects
	}
	p.gh.put(atomic.LoadUint64(&e.hash), seq, e.stamp, uint32(p.clock()))
	p.retune()
}

// judge weighs the evidence of a key coming back (see policy) and reports
// whether it earned a second chance.
func (p *policy) judge(s ghostSlot, now uint32) (pass bool) {
	margin := uint32(max(p.count/marginPart, minMargin))
	if s.seq&ghostMain != 0 {
		if (p.evictions-s.seq)&^ghostMain < margin {
			p.tune.mainGain++
		}
		return false
	}
	if now-s.stamp >= uint32(min(max(p.count, 1), math.MaxInt32)) {
		return false
	}
	if (p.rejects-s.seq)&^ghostMain < margin {
		p.tune.windowGain++
	}
	return true
}

// retune runs after every eviction: it fades old evidence and moves the
// window target when the evidence is significant.
func (p *policy) retune() {
	t := &p.tune
	t.sinceMove++
	t.sinceDecay++
	entries := max(p.count, 1)
	if t.sinceDecay >= decayEvery*entries {
		t.halve()
		p.chances.halve()
		t.sinceDecay = 0
	}
	sum := t.windowGain + t.mainGain
	if t.sinceMove < max(entries/moveGap, 1) || sum == 0 {
		return
	}
	z := (t.windowGain - t.mainGain) / math.Sqrt(sum)
	if math.Abs(z) <= zMove {
		return
	}
	step := max(p.budget/windowStep, 1)
	if z < 0 {
		step = -step
	}
	p.window = min(max(p.window+step, 1), max(p.budget, 1))
	t.halve()
	t.sinceMove = 0
}

func (t *tuner) halve() { t.windowGain, t.mainGain = t.windowGain/2, t.mainGain/2 }

// maintain sizes the sketch and the ghost for the entries held and ages the
// sketch when its period is over.
func (p *policy) maintain() {
	c := uint64(max(p.count, 0))
	p.sk.resize(c)
	p.gh.resize(c)
	p.counts.setChunk(p.count)
	if added := p.counts.adds.Load() - p.agedAdds; added >= p.sk.sample {
		p.agedAdds += p.sk.age(added)
	}
}

// park takes a pinned entry out of the eviction order.
func (p *policy) park(n uint32) {
	e := &p.ents[n]
	home := listOf(e)
	if home == staged {
		home = window
	}
	p.unlink(n)
	setState(e, weightOf(e), parked, home, 0)
	p.link(parked, n)
}

// unparkNode puts parked n back at the head of the list it came from.
func (p *policy) unparkNode(n uint32) {
	e := &p.ents[n]
	home := homeOf(e)
	p.unlink(n)
	setState(e, weightOf(e), home, home, 0)
	p.link(home, n)
	p.verifySometimes()
}

// List operations. Each list is circular through its sentinel at index
// list-1; next points from the head (newest) towards the tail (oldest).

func (p *policy) link(l uint32, n uint32) {
	s, e := l-1, &p.ents[n]
	head := p.ents[s].next
	e.prev, e.next = s, head
	p.ents[head].prev = n
	p.ents[s].next = n
	p.lists[l-1] += weightOf(e)
}

func (p *policy) unlink(n uint32) {
	e := &p.ents[n]
	p.ents[e.prev].next = e.next
	p.ents[e.next].prev = e.prev
	p.lists[listOf(e)-1] -= weightOf(e)
}

// move makes n the head of list l, keeping its second chance and its mark
// for the gate.
func (p *policy) move(l uint32, n uint32) {
	e := &p.ents[n]
	p.unlink(n)
	setState(e, weightOf(e), l, l, e.state&(passBit|chanceBit))
	p.link(l, n)
}

func (p *policy) tail(l uint32) (uint32, bool) {
	t := p.ents[l-1].prev
	return t, t != l-1
}

// setState stores an entry's state: weight, home and list, and flags (of
// passBit, mainBit and chanceBit).
func setState(e *pentry, weight int64, list, home uint32, flags uint64) {
	fence.StoreRelease(&e.state, uint64(weight)<<stateBits|uint64(home)<<3|uint64(list)|flags)
}

// flagIf returns flag if on, else 0.
func flagIf(on bool, flag uint64) uint64 {
	if on {
		return flag
	}
	return 0
}

func listOf(e *pentry) uint32  { return uint32(atomic.LoadUint64(&e.state) & listMask) }
func homeOf(e *pentry) uint32  { return uint32(e.state >> 3 & listMask) }
func weightOf(e *pentry) int64 { return int64(e.state >> stateBits) }
