//go:build linux || darwin

// System calls shared by Linux and Darwin. The calls Grow makes are variables
// so tests can inject failures and prove a failed growth changes nothing.

package vmem

import (
	"errors"
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// reserve maps size bytes PROT_NONE, private and unaccounted: address space only.
func reserve(size int) (unsafe.Pointer, error) {
	return unix.MmapPtr(-1, 0, nil, uintptr(size), unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANON|unix.MAP_NORESERVE)
}

func unmap(p unsafe.Pointer, n int) error { return unix.MunmapPtr(p, uintptr(n)) }

var protect = func(p unsafe.Pointer, n int, prot Prot) error {
	return unix.Mprotect(view(p, n), unixProt(prot))
}

// mapFile maps n bytes of f at file offset off over the reservation at p.
var mapFile = func(f *os.File, off int, p unsafe.Pointer, n int, prot Prot) error {
	_, err := unix.MmapPtr(int(f.Fd()), int64(off), p, uintptr(n), unixProt(prot),
		unix.MAP_SHARED|unix.MAP_FIXED)
	return err
}

// extendFile extends f from size to n bytes, allocating its blocks where the
// file system can, so that a full disk shows here rather than as SIGBUS at a
// later store.
var extendFile = func(f *os.File, size, n int64) error { return allocateFile(f, size, n) }

// zeros is what writeZeros writes.
var zeros [64 << 10]byte

// writeZeros extends f from size to n bytes by writing zeros, so the file
// system allocates every block now, where it has no fallocate: a full disk
// is then ENOSPC here rather than SIGBUS at a later store into a hole. On
// error the file may be longer than size; the caller cuts it back.
func writeZeros(f *os.File, size, n int64) error {
	for off := size; off < n; {
		w, err := f.WriteAt(zeros[:min(n-off, int64(len(zeros)))], off)
		if err != nil {
			return err
		}
		off += int64(w)
	}
	return nil
}

// fillHoles allocates the holes in the first n bytes of f, a sparse file
// offheap did not make, as allocateFile allocates new blocks: writing into
// a hole needs a block, and so, on tmpfs, does reading one through a shared
// mapping, so a full disk is an error here rather than SIGBUS at a later
// load or store. A file system that does not report holes (SEEK_HOLE) is
// taken to have none. f's file offset is left as it was.
func fillHoles(f *os.File, n int64) error {
	fd := int(f.Fd())
	pos, err := unix.Seek(fd, 0, io.SeekCurrent)
	if err != nil {
		return err
	}
	defer func() { _, _ = unix.Seek(fd, pos, io.SeekStart) }()
	for off := int64(0); off < n; {
		hole, err := unix.Seek(fd, off, unix.SEEK_HOLE)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENXIO) || err == nil && hole >= n {
			return nil
		}
		if err != nil {
			return err
		}
		data, err := unix.Seek(fd, hole, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // no data after the hole
			data, err = n, nil
		}
		if err != nil {
			return err
		}
		off = min(data, n)
		if err := allocateFile(f, hole, off); err != nil {
			return err
		}
	}
	return nil
}

func msync(p unsafe.Pointer, n int, async bool) error {
	flags := unix.MS_SYNC
	if async {
		flags = unix.MS_ASYNC
	}
	return unix.Msync(view(p, n), flags)
}

func unixProt(p Prot) int {
	switch p {
	case ProtRead:
		return unix.PROT_READ
	case ProtReadWrite:
		return unix.PROT_READ | unix.PROT_WRITE
	}
	return unix.PROT_NONE
}
