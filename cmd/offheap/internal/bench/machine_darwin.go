// The machine a run happens on, for the report and the memory limit: Darwin.

package bench

import "golang.org/x/sys/unix"

// PhysicalMemory returns the machine's RAM in bytes, or 8 GiB if unknown.
func PhysicalMemory() int64 {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 8 << 30
	}
	return int64(n)
}

// cpuModel returns the processor's model name, or "" if unknown.
func cpuModel() string {
	s, err := unix.Sysctl("machdep.cpu.brand_string")
	if err != nil {
		return ""
	}
	return s
}
