package arrowalloc

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestCheckedVmemErrorText makes the reservation fail (an address-space
// limit a gigabyte over what the process maps) and pins the error's text:
// the package is named once, vmem's own head is dropped, the OS cause is
// kept. It read `arrowalloc: new checked allocator: vmem "": reserve ...`
// before Checked built its errors with internal/errs.
func TestCheckedVmemErrorText(t *testing.T) {
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_AS, &old); err != nil {
		t.Skip(err)
	}
	limit := uint64(vmSize(t)) + 1<<30
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: limit, Max: old.Max}); err != nil {
		t.Skip(err)
	}
	_, err := NewChecked(&CheckedOptions{Reserve: DefaultCheckedReserve})
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &old); err != nil {
		t.Fatal(err)
	}
	want := "arrowalloc: new checked allocator: reserving 4294967296 bytes: cannot allocate memory"
	if err == nil || err.Error() != want || !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
}

// vmSize returns the bytes of address space the process maps.
func vmSize(t *testing.T) int {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	for s := bufio.NewScanner(f); s.Scan(); {
		if v, ok := strings.CutPrefix(s.Text(), "VmSize:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Skip("no VmSize in /proc/self/status")
	return 0
}
