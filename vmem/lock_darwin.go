// macOS file locks: macOS has no open file description byte-range locks, so
// the writer lock is flock(2) and read-only regions take none. A writer there
// cannot see its readers and cuts the file as asked; Linux is the tested
// platform.

package vmem

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockWriter takes f's writer lock, or returns ErrInUse.
func lockWriter(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return ErrInUse
		}
		return err
	}
}

func lockReader(*os.File, int) error { return nil }

func lockCut(*os.File, int64) (bool, error) { return true, nil }

func unlockCut(*os.File, int64) {}

func unlockAll(f *os.File) { _ = unix.Flock(int(f.Fd()), unix.LOCK_UN) }
