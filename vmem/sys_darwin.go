// Darwin system calls: compiled so the package builds on macOS; Linux is the
// tested platform. Release uses MADV_FREE, which lets the kernel reclaim the
// pages lazily, so RSS may not fall at once.

package vmem

import (
	"errors"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

func dontNeed(p unsafe.Pointer, n int) error {
	return unix.Madvise(view(p, n), unix.MADV_FREE)
}

func adviseHuge(unsafe.Pointer, int) error { return errors.ErrUnsupported }

func nameRange(unsafe.Pointer, int, string) error { return errors.ErrUnsupported }

// allocateFile extends f from size to n bytes by writing zeros, so its
// blocks are allocated now (see writeZeros).
func allocateFile(f *os.File, size, n int64) error { return writeZeros(f, size, n) }

func resident(unsafe.Pointer, int) (int, error) { return 0, errors.ErrUnsupported }

// RSS returns this process's resident set size in bytes. Darwin: not supported.
func RSS() (int, error) { return 0, errors.ErrUnsupported }
