// Physical memory size on Darwin.

package main

import "golang.org/x/sys/unix"

// physicalMemory returns the machine's RAM in bytes, or 8 GiB if unknown.
func physicalMemory() int64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 8 << 30
	}
	return int64(n)
}
