// Physical memory size on Linux.

package main

import "golang.org/x/sys/unix"

// physicalMemory returns the machine's RAM in bytes, or 8 GiB if unknown.
func physicalMemory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 8 << 30
	}
	return int64(si.Totalram) * int64(si.Unit)
}
