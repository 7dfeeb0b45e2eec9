package payload

import (
	"errors"
	"testing"
)

// TestMetaStoreFirstFit checks gomap-meta's Opteryx behaviour: holes are
// reused first-fit, and when top runs out neighbouring holes merge.
func TestMetaStoreFirstFit(t *testing.T) {
	s := &metaStore{buf: make([]byte, 10*104), m: map[uint64]metaSeg{}}
	for k := range uint64(10) {
		if _, err := s.Commit(k, payload); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.Release(3)
	_ = s.Release(4)
	if _, err := s.Commit(20, payload); err != nil || s.m[20].off != 3*104 {
		t.Fatalf("first fit: %+v %v", s.m[20], err)
	}
	if _, err := s.Commit(21, make([]byte, 2*PayloadSize)); err == nil {
		t.Fatal("a 200-byte commit fit in a full buffer")
	}
	_ = s.Release(5)
	_ = s.Release(6)
	if _, err := s.Commit(21, make([]byte, 2*PayloadSize)); err != nil || s.m[21].off != 4*104 {
		t.Fatalf("merged holes not used: %+v %v", s.m[21], err)
	}
	if err := s.Release(99); !errors.Is(err, ErrMissing) {
		t.Fatal(err)
	}
}
