package fence

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestSeqlock runs a seqlock built on the package: one writer keeps two
// words equal, making the sequence number odd while it changes them; readers
// that saw the same even number before and after reading must never see the
// words differ.
func TestSeqlock(t *testing.T) {
	var seq, a, b uint64
	const writes = 200000
	var torn atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := atomic.LoadUint64(&seq)
				x, y := atomic.LoadUint64(&a), atomic.LoadUint64(&b)
				Load()
				if s&1 == 0 && atomic.LoadUint64(&seq) == s && x != y {
					torn.Add(1)
				}
			}
		}()
	}
	for i := uint64(1); i <= writes; i++ {
		s := atomic.LoadUint64(&seq)
		StoreRelease(&seq, s+1)
		Store()
		StoreRelease(&a, i)
		StoreRelease(&b, i)
		StoreRelease(&seq, s+2)
	}
	close(stop)
	wg.Wait()
	if n := torn.Load(); n != 0 {
		t.Fatalf("%d reads validated two different words", n)
	}
	if seq != 2*writes || a != writes || b != writes {
		t.Fatalf("seq %d, a %d, b %d after %d writes", seq, a, b, writes)
	}
}
