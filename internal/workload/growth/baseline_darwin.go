// The mremap growth baseline does not exist on Darwin.

package growth

import (
	"errors"
	"fmt"
)

// GrowRemap is Linux's mremap baseline; Darwin has no mremap.
func GrowRemap(b []byte, n int) ([]byte, error) {
	return nil, fmt.Errorf("growth: mremap %d to %d bytes: %w", len(b), n, errors.ErrUnsupported)
}
