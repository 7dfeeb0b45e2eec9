// Benchmarks of the policy's operations on their own.

package cache

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkPolicyHit measures hit, the lock-free call every cache hit makes,
// from all Ps at once on a million entries.
func BenchmarkPolicyHit(b *testing.B) { benchHits(b, 1<<20) }

// BenchmarkPolicyHitHot is BenchmarkPolicyHit on 1000 hot entries, whose
// counters saturate, so hits should write nothing.
func BenchmarkPolicyHitHot(b *testing.B) { benchHits(b, 1000) }

// benchHits hits random entries among the first hot of a policy holding a
// million, from all Ps at once.
func benchHits(b *testing.B, hot int) {
	const n = 1 << 20
	p := newTestPolicy(b, n, n)
	for id := range uint32(n) {
		p.add(id, mix64(uint64(id)), 1)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 1))
		for pb.Next() {
			hitID(p, uint32(r.IntN(hot)))
		}
	})
}

// BenchmarkPolicyEvict measures one eviction and one insertion at capacity,
// what a Set of a new key costs the policy.
func BenchmarkPolicyEvict(b *testing.B) {
	const n = 1 << 16
	p := newTestPolicy(b, n, n+1)
	fill(b, p, n, 1)
	free := uint32(n)
	r := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	for b.Loop() {
		h := r.Uint64()
		p.miss(h)
		p.admit(h, 1)
		v, _ := p.victim(never)
		p.remove(v)
		p.add(free, h, 1)
		free = v
		if r.IntN(4) == 0 {
			hitID(p, uint32(r.IntN(n)))
		}
	}
}
