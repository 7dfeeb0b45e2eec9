package mapped_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/offheap/offheap/mapped"
)

// The disk-full test runs this test binary again as a child (diskFullEnv set
// to a file path) with the file size limit lowered, so growing the file fails
// the way a full disk does (EFBIG here, ENOSPC there): in the kernel, not in
// offheap's own bookkeeping.

const diskFullEnv = "OFFHEAP_MAPPED_DISKFULL_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(churnEnv); path != "" {
		if err := churnChild(path); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if path := os.Getenv(crashEnv); path != "" {
		if err := crashChild(path); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	if path := os.Getenv(diskFullEnv); path != "" {
		if err := diskFullChild(path); err != nil {
			fmt.Println("FAIL:", err)
			os.Exit(1)
		}
		fmt.Println("PASS")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// diskFullChild limits files to 256 KiB, appends to a file Memory until an
// append fails, and checks the failure left the memory as it was.
func diskFullChild(path string) error {
	signal.Ignore(syscall.SIGXFSZ) // the kernel's signal for a write past the limit; the call then fails with EFBIG
	const limit = 256 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		return err
	}
	m, err := mapped.OpenFile(path, &mapped.Options{ExtendSize: 64 << 10})
	if err != nil {
		return err
	}
	row := bytes.Repeat([]byte("x"), 1000)
	for i := 0; ; i++ {
		before := m.Len()
		err := m.AppendBin(row)
		if err == nil {
			continue
		}
		if !errors.Is(err, syscall.EFBIG) {
			return fmt.Errorf("append %d failed with %v, want EFBIG", i, err)
		}
		if m.Len() != before || before > limit {
			return fmt.Errorf("failed append moved Len from %d to %d", before, m.Len())
		}
		for off := 0; off < m.Len(); off += 4 + len(row) {
			if !bytes.Equal(m.Bin(off), row) {
				return fmt.Errorf("row at %d changed", off)
			}
		}
		if err := m.AppendInt32(7); err != nil { // what still fits in the ready part still appends
			if !errors.Is(err, syscall.EFBIG) {
				return err
			}
		}
		return m.Close()
	}
}

// TestDiskFullAppendChangesNothing: an append whose file growth the kernel
// refuses returns that error, wrapped, and leaves the memory and the file as
// they were.
func TestDiskFullAppendChangesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "full")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), diskFullEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	m, err := mapped.OpenFile(path, &mapped.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Len() == 0 || m.Len() > 256<<10 {
		t.Fatalf("file of %d bytes after the failed appends", m.Len())
	}
	if !bytes.Equal(m.Bin(0), bytes.Repeat([]byte("x"), 1000)) {
		t.Fatal("first row lost")
	}
}
