// Linux file locks: open file description (OFD) byte-range locks, which
// conflict between two opens in one process as between processes and are
// dropped by the kernel when the last descriptor of the open closes.

package vmem

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// The lock layout. Advisory locks may lie past the end of a file, so the
// ranges are fixed whatever the file's length:
//   - byte 0 is the writer lock, held exclusively by a writable region;
//   - [1, 1+n) is held shared by a read-only region mapping n bytes;
//   - [1+n, end) is taken exclusively, briefly, by a writer cutting the file
//     to n bytes: it conflicts with exactly the readers that map past n.
const readerBase = 1

// setLock sets (or, with unix.F_UNLCK, clears) a lock of the type typ on
// [start, start+n) of f, n == 0 meaning to the end of every file.
func setLock(f *os.File, typ int16, start, n int64) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: start, Len: n}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		switch err {
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.EACCES:
			return errLocked
		}
		return err
	}
}

// lockWriter takes f's writer lock, or returns ErrInUse.
func lockWriter(f *os.File) error {
	if err := setLock(f, unix.F_WRLCK, 0, 1); err != errLocked {
		return err
	}
	return ErrInUse
}

// lockReader sets this open's reader lock to cover exactly the first n
// bytes of f: it extends the lock before dropping what lies past n, so the
// bytes it already covered are never uncovered. errLocked means a writer is
// cutting the file below n.
func lockReader(f *os.File, n int) error {
	if n > 0 {
		if err := setLock(f, unix.F_RDLCK, readerBase, int64(n)); err != nil {
			return err
		}
	}
	return setLock(f, unix.F_UNLCK, readerBase+int64(n), 0)
}

// lockCut takes the lock that lets a writer cut f to n bytes, and reports
// false if a reader maps past n.
func lockCut(f *os.File, n int64) (bool, error) {
	err := setLock(f, unix.F_WRLCK, readerBase+n, 0)
	if err == errLocked {
		return false, nil
	}
	return err == nil, err
}

// unlockCut drops the lock lockCut took.
func unlockCut(f *os.File, n int64) { _ = setLock(f, unix.F_UNLCK, readerBase+n, 0) }

// unlockAll drops every lock this open holds on f.
func unlockAll(f *os.File) { _ = setLock(f, unix.F_UNLCK, 0, 0) }
