// Unit, concurrency, allocation and model-based fuzz tests of the policy.

package cache

import (
	"encoding/binary"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

func newTestPolicy(t testing.TB, budget int64, maxEntries uint32) *policy {
	t.Helper()
	p := new(policy)
	t.Cleanup(initPolicy(t, p, budget, maxEntries))
	return p
}

// initPolicy initialises p and returns what frees it.
func initPolicy(t testing.TB, p *policy, budget int64, maxEntries uint32) (free func()) {
	t.Helper()
	if err := p.init(budget, maxEntries); err != nil {
		t.Fatal(err)
	}
	return p.free
}

// hitID records a hit on id as a reader of the cache would: with the hash
// of id's key.
func hitID(p *policy, id uint32) {
	p.hit(id, atomic.LoadUint64(&p.ents[id+numLists].hash))
}

func never(uint32) bool { return false }

// fill adds ids [0, n) of weight w, evicting as the cache would.
func fill(t testing.TB, p *policy, n int, w int64) (evicted []uint32) {
	t.Helper()
	for id := range uint32(n) {
		h := mix64(uint64(id))
		p.miss(h)
		if !p.admit(h, w) {
			t.Fatalf("admit(%d) refused", w)
		}
		for p.used()+w > p.budget {
			v, ok := p.victim(never)
			if !ok {
				t.Fatal("no victim")
			}
			p.remove(v)
			evicted = append(evicted, v)
		}
		p.add(id, h, w)
	}
	return evicted
}

func TestPolicyAccounting(t *testing.T) {
	p := newTestPolicy(t, 1000, 64)
	held := map[uint32]int64{}
	var want int64
	for id := range uint32(10) {
		w := int64(10 + id)
		h := mix64(uint64(id))
		if !p.admit(h, w) {
			t.Fatal("refused")
		}
		p.add(id, h, w)
		held[id] = w
		want += w
		if p.used() != want {
			t.Fatalf("after add %d: used %d, want %d", id, p.used(), want)
		}
	}
	for id, w := range held {
		p.remove(id)
		want -= w
		if p.used() != want {
			t.Fatalf("after remove %d: used %d, want %d", id, p.used(), want)
		}
	}
	if p.count != 0 {
		t.Fatalf("count %d after removing everything", p.count)
	}
	if _, ok := p.victim(never); ok {
		t.Fatal("victim of an empty policy")
	}
}

func TestPolicyAdmitRefuses(t *testing.T) {
	p := newTestPolicy(t, 1000, 8)
	for _, w := range []int64{-1, 1001, maxWeight + 1} {
		if p.admit(1, w) {
			t.Errorf("admit(%d) with budget 1000", w)
		}
	}
	if !p.admit(1, 1000) || !p.admit(1, 0) {
		t.Error("admit refused a weight within the budget")
	}
}

// TestPolicyEvictsEverything checks that victim returns every entry exactly
// once when nothing is pinned, whatever hits and lists they went through.
func TestPolicyEvictsEverything(t *testing.T) {
	p := newTestPolicy(t, 100, 300)
	fill(t, p, 300, 1)
	for i := range 5000 {
		hitID(p, uint32(rand.IntN(300)))
		if i%7 == 0 {
			p.miss(uint64(i))
		}
	}
	held := int(p.count)
	seen := map[uint32]bool{}
	for {
		v, ok := p.victim(never)
		if !ok {
			break
		}
		if seen[v] {
			t.Fatalf("id %d returned twice", v)
		}
		seen[v] = true
		p.remove(v)
	}
	if len(seen) != held || p.used() != 0 {
		t.Fatalf("evicted %d of %d, used %d", len(seen), held, p.used())
	}
}

// TestPolicyParks checks that pinned entries are never returned, are parked
// once (not scanned again by later calls), and come back with unpark.
func TestPolicyParks(t *testing.T) {
	p := newTestPolicy(t, 100, 200)
	fill(t, p, 100, 1)
	pins := map[uint32]bool{}
	for id := uint32(0); id < 100; id += 2 {
		pins[id] = true
	}
	asked := map[uint32]int{}
	pinned := func(id uint32) bool { asked[id]++; return pins[id] }
	var got []uint32
	for {
		v, ok := p.victim(pinned)
		if !ok {
			break
		}
		if pins[v] {
			t.Fatalf("victim returned pinned id %d", v)
		}
		p.remove(v)
		got = append(got, v)
	}
	if len(got) != 50 {
		t.Fatalf("evicted %d unpinned entries, want 50", len(got))
	}
	for id := range pins {
		if !p.parked(id) {
			t.Errorf("pinned id %d is not parked", id)
		}
		if asked[id] > 2 { // once when met, once re-checked after parking
			t.Errorf("pinned id %d was asked about %d times", id, asked[id])
		}
	}
	if p.used() != 50 {
		t.Fatalf("used %d with 50 parked entries", p.used())
	}
	for id := range pins {
		p.unpark(id)
		if p.parked(id) {
			t.Fatalf("id %d still parked after unpark", id)
		}
	}
	n := 0
	for {
		v, ok := p.victim(never)
		if !ok {
			break
		}
		p.remove(v)
		n++
	}
	if n != 50 || p.used() != 0 {
		t.Fatalf("evicted %d unparked entries, used %d", n, p.used())
	}
}

// TestPolicyUnpinDuringVictim is the race between victim parking an entry
// and the entry's last unpin: an unpin that happens between pinned(id) and
// the park must not leave the entry parked for ever.
func TestPolicyUnpinDuringVictim(t *testing.T) {
	p := newTestPolicy(t, 10, 20)
	fill(t, p, 10, 1)
	calls := 0
	// Pinned when first asked, unpinned by the time victim re-checks.
	flaky := func(uint32) bool { calls++; return calls == 1 }
	v, ok := p.victim(flaky)
	if !ok {
		t.Fatal("no victim")
	}
	for id := range uint32(10) {
		if p.parked(id) {
			t.Fatalf("id %d left parked though unpinned", id)
		}
	}
	p.remove(v)
}

func TestPolicySetBudget(t *testing.T) {
	p := newTestPolicy(t, 1000, 2000)
	fill(t, p, 1000, 1)
	p.setBudget(100)
	for p.used() > 100 {
		v, ok := p.victim(never)
		if !ok {
			t.Fatal("no victim while over budget")
		}
		p.remove(v)
	}
	if p.window < 1 || p.window > 100 {
		t.Fatalf("window %d outside the new budget", p.window)
	}
	p.setBudget(5000)
	for id := uint32(1000); id < 2000; id++ {
		h := mix64(uint64(id))
		if !p.admit(h, 1) {
			t.Fatal("refused")
		}
		for p.used()+1 > p.budget {
			v, _ := p.victim(never)
			p.remove(v)
		}
		p.add(id, h, 1)
	}
	if p.used() != 1100 {
		t.Fatalf("used %d after growing the budget, want 1100", p.used())
	}
}

// TestPolicyScanResistance: a scan of new keys does not flush a working set
// that was hit repeatedly.
func TestPolicyScanResistance(t *testing.T) {
	p := newTestPolicy(t, 100, 1200)
	in := map[uint32]bool{}
	add := func(id uint32) {
		h := mix64(uint64(id))
		p.miss(h)
		p.admit(h, 1)
		for p.used()+1 > p.budget {
			v, _ := p.victim(never)
			p.remove(v)
			delete(in, v)
		}
		p.add(id, h, 1)
		in[id] = true
	}
	for round := 0; round < 20; round++ {
		for id := uint32(0); id < 80; id++ {
			if in[id] {
				hitID(p, id)
			} else {
				add(id)
			}
		}
	}
	for id := uint32(100); id < 1100; id++ {
		add(id)
	}
	kept := 0
	for id := uint32(0); id < 80; id++ {
		if in[id] {
			kept++
		}
	}
	if kept < 70 {
		t.Fatalf("a scan of 1000 new keys left %d of the 80 hot ones", kept)
	}
}

// TestPolicyConcurrentHits runs hits and misses on every id while another
// goroutine adds, evicts and removes under a lock, as the cache does; it is
// for the race detector and the checked build's invariants.
func TestPolicyConcurrentHits(t *testing.T) {
	const n = 512
	p := newTestPolicy(t, n/2, n)
	var mu sync.Mutex
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			for !stop.Load() {
				id := uint32(r.IntN(n))
				hitID(p, id)
				p.miss(r.Uint64())
				_ = p.parked(id)
			}
		}()
	}
	held := make([]bool, n)
	r := rand.New(rand.NewPCG(9, 9))
	for i := range 20000 {
		id := uint32(r.IntN(n))
		mu.Lock()
		if held[id] {
			p.remove(id)
			held[id] = false
		} else if h := r.Uint64(); p.admit(h, 1) {
			for p.used()+1 > p.budget {
				v, ok := p.victim(never)
				if !ok {
					t.Fatal("no victim")
				}
				p.remove(v)
				held[v] = false
			}
			p.add(id, h, 1)
			held[id] = true
		}
		if i%1000 == 0 {
			p.setBudget(int64(n/4 + r.IntN(n/2)))
		}
		mu.Unlock()
	}
	stop.Store(true)
	wg.Wait()
	if err := p.verify(); err != nil {
		t.Fatal(err)
	}
}

func TestPolicyAllocs(t *testing.T) {
	p := newTestPolicy(t, 1000, 2000)
	fill(t, p, 1000, 1)
	id := uint32(1000)
	next := func() uint32 { id = 1000 + (id-999)%1000; return id }
	if a := testing.AllocsPerRun(1000, func() { hitID(p, uint32(rand.IntN(1000))) }); a != 0 {
		t.Errorf("hit: %v allocs", a)
	}
	if a := testing.AllocsPerRun(1000, func() { p.miss(rand.Uint64()) }); a != 0 {
		t.Errorf("miss: %v allocs", a)
	}
	held := make([]bool, 2000)
	for i := range 1000 {
		held[i] = true
	}
	a := testing.AllocsPerRun(10000, func() {
		n := next()
		if held[n] {
			p.remove(n)
			held[n] = false
			return
		}
		h := rand.Uint64()
		p.miss(h)
		p.admit(h, 1)
		for p.used()+1 > p.budget {
			v, _ := p.victim(never)
			p.remove(v)
			held[v] = false
		}
		p.add(n, h, 1)
		held[n] = true
	})
	if a != 0 {
		t.Errorf("evict and add: %v allocs", a)
	}
}

// TestPolicyHeap checks that the policy keeps no per-entry data on the Go
// heap: a million entries cost it nothing there.
func TestPolicyHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("adds a million entries")
	}
	const n = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	p := newTestPolicy(t, n, n)
	for id := range uint32(n) {
		p.add(id, mix64(uint64(id)), 1)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > 64<<10 {
		t.Fatalf("the Go heap grew by %d bytes for %d entries", grew, n)
	}
	runtime.KeepAlive(p)
}

// FuzzPolicy drives the policy with random operations, as the cache would,
// against a model that knows which ids are held, their weights and pins. It
// checks that used() is exact, victim never returns a pinned or unknown id,
// never returns an id twice without a remove in between, parks only pinned
// ids, and that once everything is unpinned every held id is evicted exactly
// once.
func FuzzPolicy(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte("add add add victim pin victim unpin hit miss budget"))
	f.Add(binary.LittleEndian.AppendUint64(nil, 0x0123456789abcdef))
	seed := make([]byte, 4096)
	for i := range seed {
		seed[i] = byte(i*7 + i>>3)
	}
	f.Add(seed)
	f.Fuzz(fuzzBody)
}

func fuzzBody(t *testing.T, ops []byte) {
	{
		const maxIDs = 64
		p := newTestPolicy(t, 200, maxIDs)
		m := policyModel{weights: map[uint32]int64{}, pins: map[uint32]bool{}}
		pinned := func(id uint32) bool { return m.pins[id] }
		for len(ops) >= 2 {
			op, arg := ops[0]%8, ops[1]
			ops = ops[2:]
			id := uint32(arg) % maxIDs
			_, held := m.weights[id]
			switch op {
			case 0, 1: // a new entry, evicting to make room
				w := int64(arg%50) + 1
				if held || !p.admit(uint64(arg)*0x9e3779b97f4a7c15, w) {
					break
				}
				for p.used()+w > p.budget {
					v, ok := p.victim(pinned)
					if !ok {
						break
					}
					m.evicted(t, p, v)
				}
				if p.used()+w > p.budget {
					break // everything pinned: the cache reports it and adds nothing
				}
				p.add(id, uint64(arg)*0x9e3779b97f4a7c15, w)
				m.weights[id] = w
			case 2: // delete or replace
				if held {
					p.remove(id)
					delete(m.weights, id)
					delete(m.pins, id)
				}
			case 3: // evict, or put back a victim found pinned after all
				if v, ok := p.victim(pinned); ok && arg&1 == 0 {
					m.evicted(t, p, v)
				} else if ok {
					if _, held := m.weights[v]; !held || m.pins[v] {
						t.Fatalf("victim returned id %d: held %v, pinned %v", v, held, m.pins[v])
					}
					p.unpark(v)
				} else if m.unpinned() > 0 {
					t.Fatalf("victim found none with %d unpinned entries", m.unpinned())
				}
			case 4:
				if held {
					hitID(p, id)
				}
				p.miss(uint64(arg))
			case 5: // pin
				if held {
					m.pins[id] = true
				}
			case 6: // last unpin, as the cache does it
				if m.pins[id] {
					delete(m.pins, id)
					if p.parked(id) {
						p.unpark(id)
					}
				}
			case 7:
				p.setBudget(int64(arg) + 50)
			}
			m.check(t, p)
		}
		// Unpin everything: every held entry must come out exactly once.
		for id := range m.pins {
			delete(m.pins, id)
			if p.parked(id) {
				p.unpark(id)
			}
		}
		for len(m.weights) > 0 {
			v, ok := p.victim(pinned)
			if !ok {
				t.Fatalf("%d entries held but no victim", len(m.weights))
			}
			m.evicted(t, p, v)
		}
		if p.used() != 0 {
			t.Fatalf("used %d with nothing held", p.used())
		}
	}
}

type policyModel struct {
	weights map[uint32]int64
	pins    map[uint32]bool
}

func (m *policyModel) evicted(t *testing.T, p *policy, v uint32) {
	t.Helper()
	if _, ok := m.weights[v]; !ok {
		t.Fatalf("victim returned id %d, which is not held (or was returned already)", v)
	}
	if m.pins[v] {
		t.Fatalf("victim returned pinned id %d", v)
	}
	p.remove(v)
	delete(m.weights, v)
}

func (m *policyModel) unpinned() int { return len(m.weights) - len(m.pins) }

func (m *policyModel) check(t *testing.T, p *policy) {
	t.Helper()
	var sum int64
	for _, w := range m.weights {
		sum += w
	}
	if p.used() != sum {
		t.Fatalf("used %d, model %d", p.used(), sum)
	}
	for id := range uint32(64) {
		if p.parked(id) && !m.pins[id] {
			t.Fatalf("id %d parked but not pinned", id)
		}
	}
	if err := p.verify(); err != nil {
		t.Fatal(err)
	}
}

// TestGate checks the second-chance gate's rule: open without evidence,
// closed once chanced entries are hit significantly less often than the
// others, open again when the others do no better, and open again as the
// evidence fades.
func TestGate(t *testing.T) {
	var g gate
	if !g.open() {
		t.Fatal("closed with no evidence")
	}
	for range 100 {
		g.judged(false, true) // the others: all hit
	}
	for range 4 {
		g.judged(true, false)
	}
	if !g.open() {
		t.Fatal("closed on 4 chanced entries, fewer than gateMinHits expected hits")
	}
	for range 4 {
		g.judged(true, false)
	}
	if g.open() {
		t.Fatalf("open with chanced entries 0 of 8 hit, the others 100 of 100: %+v", g)
	}
	for range 8 {
		g.halve()
	}
	if !g.open() {
		t.Fatalf("still closed after the evidence faded: %+v", g)
	}
	g = gate{}
	for i := range 100 {
		g.judged(false, i%2 == 0)
		g.judged(true, i%2 == 1)
	}
	if !g.open() {
		t.Fatalf("closed with chanced and other entries hit alike: %+v", g)
	}
}
