// Package testfs mounts small file systems for tests that need a full disk
// or a file system without fallocate. Mounting needs root (and, for ext2,
// mkfs.ext2 and a loop device); where any is missing the test is skipped.
package testfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Ext2 mounts a new ext2 file system of size bytes, which has no fallocate,
// on a loop device and returns its root; it is unmounted and the loop device
// detached when the test ends.
func Ext2(t testing.TB, size int64) string {
	t.Helper()
	mayMount(t)
	mkfs, err := exec.LookPath("mkfs.ext2")
	if err != nil {
		t.Skip("no mkfs.ext2 (e2fsprogs) to make an ext2 image")
	}
	img := filepath.Join(t.TempDir(), "ext2.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(mkfs, "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Skipf("mkfs.ext2: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Skipf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { // runs after the unmount, which was registered later
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v: %s", dev, err, out)
		}
	})
	return mount(t, dev)
}

// Tmpfs mounts a tmpfs of size bytes and returns its root; it is unmounted
// when the test ends.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	mayMount(t)
	return mount(t, "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "offheap-test")
}

func mayMount(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("mounting a test file system needs root on Linux")
	}
}

// mount runs mount(8) with args and a new directory as the mount point.
func mount(t testing.TB, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", append(args, dir)...).CombinedOutput(); err != nil {
		t.Skipf("mount %v: %v: %s", args, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			// Still busy (a failed test left a file open): detach it lazily,
			// so it goes when the process does.
			_ = exec.Command("umount", "-l", dir).Run()
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}
