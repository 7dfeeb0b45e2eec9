// The machine a run happens on, for the report and the memory limit: Linux.

package bench

import (
	"bufio"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// PhysicalMemory returns the machine's RAM in bytes, or 8 GiB if unknown.
func PhysicalMemory() int64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 8 << 30
	}
	return int64(si.Totalram) * int64(si.Unit)
}

// cpuModel returns the processor's model name, or "" if unknown.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
