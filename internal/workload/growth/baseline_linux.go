// The mremap growth baseline (Linux only).

package growth

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// GrowRemap grows a mapping made by MapAnon to n bytes with mremap and
// MREMAP_MAYMOVE: the kernel moves page tables, not data, but the address may
// change, which invalidates every view of the old one.
func GrowRemap(b []byte, n int) ([]byte, error) {
	nb, err := unix.Mremap(b, n, unix.MREMAP_MAYMOVE)
	if err != nil {
		return nil, fmt.Errorf("growth: mremap %d to %d bytes: %w", len(b), n, err)
	}
	return nb, nil
}
