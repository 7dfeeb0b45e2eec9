package pool

import (
	"errors"
	"strings"
	"testing"
)

// TestHotPathsDoNotAllocate: Commit, Read, Latch, Unlatch, Release and
// Info allocate nothing on the Go heap once the pool is warm.
func TestHotPathsDoNotAllocate(t *testing.T) {
	p := newT(t, 1<<20, nil)
	data := make([]byte, 100)
	dst := make([]byte, 0, 128)
	keep := commitT(t, p, data) // the cycle's segment is not the only one
	for name, f := range map[string]func(){
		"commit-read-release": func() {
			r, _ := p.Commit(data)
			dst, _ = p.Read(r, dst[:0])
			_ = p.Release(r)
		},
		"commit-latch-unlatch-release": func() {
			r, _ := p.Commit(data)
			_, _ = p.Latch(r)
			_ = p.Unlatch(r)
			_ = p.Release(r)
		},
		"release-into-hole": func() { // commit two, release the first: a hole
			a, _ := p.Commit(data)
			b, _ := p.Commit(data)
			_ = p.Release(a)
			_ = p.Release(b)
		},
		"info-zero-length": func() {
			_, _ = p.Info(keep)
			r, _ := p.Commit(nil)
			_ = p.Release(r)
		},
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocs per run", name, n)
		}
	}
}

// TestTryReserveFullDoesNotAllocate: a TryReserve that finds no room (a
// cache at capacity meets it on every Set when the free space is split)
// fails with ErrFull, naming the pool, and allocates nothing; the failure
// still counts.
func TestTryReserveFullDoesNotAllocate(t *testing.T) {
	p := newT(t, 4096, &Options{Name: "full"})
	for {
		r, _, err := p.TryReserve(512)
		if err != nil {
			break
		}
		defer func() { _ = p.Release(r) }()
	}
	before := p.Stats().FailedCommits
	var err error
	if n := testing.AllocsPerRun(100, func() { _, _, err = p.TryReserve(512) }); n != 0 {
		t.Errorf("failing TryReserve: %v allocs per run", n)
	}
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), `pool "full"`) {
		t.Errorf("failing TryReserve: %v, want ErrFull naming the pool", err)
	}
	if got := p.Stats().FailedCommits; got <= before {
		t.Errorf("FailedCommits %d after failing TryReserves, was %d", got, before)
	}
}
