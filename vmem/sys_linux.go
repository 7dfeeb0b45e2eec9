// Linux system calls: release with MADV_DONTNEED, fallocate, VMA names,
// huge-page advice, mincore and /proc for memory figures.

package vmem

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// dontNeed drops the pages at once: RSS falls before madvise returns.
func dontNeed(p unsafe.Pointer, n int) error {
	return unix.Madvise(view(p, n), unix.MADV_DONTNEED)
}

func adviseHuge(p unsafe.Pointer, n int) error {
	return unix.Madvise(view(p, n), unix.MADV_HUGEPAGE)
}

// nameRange labels an anonymous mapping in /proc/PID/maps (Linux 5.17+,
// CONFIG_ANON_VMA_NAME); older kernels answer EINVAL.
func nameRange(p unsafe.Pointer, n int, name string) error {
	s, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	return unix.PrctlArg5Ptr(unix.PR_SET_VMA, unix.PR_SET_VMA_ANON_NAME,
		uintptr(p), uintptr(n), unsafe.Pointer(s))
}

// fallocate allocates [off, off+n) of f; a variable so tests can take the
// path of a file system without fallocate.
var fallocate = func(f *os.File, off, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), 0, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

// allocateFile extends f from size to n bytes with fallocate, or by writing
// zeros where the file system does not support it (ext2, vfat, some NFS and
// FUSE mounts): never by ftruncate alone, whose sparse file turns a full disk
// into SIGBUS at a later store.
func allocateFile(f *os.File, size, n int64) error {
	err := fallocate(f, size, n-size)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return writeZeros(f, size, n)
	}
	return err
}

// resident counts the resident pages of [p, p+n) with mincore.
func resident(p unsafe.Pointer, n int) (int, error) {
	if n == 0 {
		return 0, nil
	}
	vec := make([]byte, (n+pageSize-1)/pageSize)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(p), uintptr(n), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return 0, errno
	}
	pages := 0
	for _, v := range vec {
		pages += int(v & 1)
	}
	return pages * pageSize, nil
}

// RSS returns this process's resident set size in bytes, read from
// /proc/self/statm.
func RSS() (int, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, errors.New("vmem: read RSS: short /proc/self/statm")
	}
	pages, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, err
	}
	return pages * pageSize, nil
}
