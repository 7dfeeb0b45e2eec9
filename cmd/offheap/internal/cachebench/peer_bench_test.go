// Go benchmarks of the speed cases for offheap and its peers side by side,
// for benchstat A/B runs (`go test -bench . -count 10`) of the figures the
// cache suite reports.

package cachebench

import (
	"testing"

	"github.com/offheap/offheap/internal/workload/lookup"
)

func benchPeers(b *testing.B, setup func(lookup.New, int) (lookup.Bench, error), impls ...string) {
	for _, impl := range impls {
		b.Run(impl, func(b *testing.B) {
			bm, err := setup(newStores[impl], speedEntries)
			if err != nil {
				b.Fatal(err)
			}
			defer bm.Close()
			bm.Run(b)
		})
	}
}

func BenchmarkPeerGet(b *testing.B) {
	benchPeers(b, lookup.Get, "offheap", "fastcache", "freecache", "otter")
}

func BenchmarkPeerGetPinned(b *testing.B) {
	benchPeers(b, lookup.GetPinned, "offheap", "otter")
}

func BenchmarkPeerSetEvict(b *testing.B) {
	benchPeers(b, lookup.SetEvict, "offheap", "otter")
}
