// The growth baselines offheap is measured against: plain mappings grown by
// mremap (QuestDB's way, the address may move) or by copying. They exist for
// the benchmarks only; offheap itself grows a Region in place.

package growth

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// MapAnon returns n bytes of fresh, private anonymous memory: a plain mapping
// with no reservation behind it, for the growth baselines.
func MapAnon(n int) ([]byte, error) {
	if n <= 0 {
		return nil, fmt.Errorf("growth: map %d anonymous bytes: invalid size", n)
	}
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("growth: map %d anonymous bytes: %w", n, err)
	}
	return b, nil
}

// Unmap unmaps a mapping made by MapAnon, GrowRemap or GrowCopy.
func Unmap(b []byte) error {
	if err := unix.Munmap(b); err != nil {
		return fmt.Errorf("growth: unmap %d bytes: %w", len(b), err)
	}
	return nil
}

// GrowCopy grows a mapping the naive way: map n bytes, copy, unmap the old one.
// The returned slice is at a new address.
func GrowCopy(b []byte, n int) ([]byte, error) {
	nb, err := MapAnon(n)
	if err != nil {
		return nil, err
	}
	copy(nb, b)
	if err := Unmap(b); err != nil {
		_ = Unmap(nb)
		return nil, err
	}
	return nb, nil
}
