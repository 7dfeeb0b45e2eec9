package vmem

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/offheap/offheap/internal/check"
)

const mib = 1 << 20

func reserveT(t testing.TB, size int) *Region {
	t.Helper()
	r, err := Reserve(size, &Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = seed + byte(i*7)
	}
}

func TestGrowKeepsAddressAndData(t *testing.T) {
	r := reserveT(t, 64*mib)
	if r.Len() != 0 || r.Cap() != 64*mib {
		t.Fatalf("fresh region Len %d Cap %d", r.Len(), r.Cap())
	}
	if err := r.Grow(1); err != nil {
		t.Fatal(err)
	}
	if r.Len() != PageSize() {
		t.Fatalf("Grow(1) made %d bytes ready, want one page", r.Len())
	}
	first := r.Bytes()
	fill(first, 1)
	for _, n := range []int{3 * PageSize(), mib, 64 * mib} {
		if err := r.Grow(n); err != nil {
			t.Fatal(err)
		}
		b := r.Bytes()
		if len(b) != n || unsafe.SliceData(b) != unsafe.SliceData(first) {
			t.Fatalf("after Grow(%d): len %d, base moved %v", n, len(b), unsafe.SliceData(b) != unsafe.SliceData(first))
		}
		want := make([]byte, len(first))
		fill(want, 1)
		if !bytes.Equal(first, want) {
			t.Fatal("data changed across growth")
		}
		b[n-1] = 9 // the new end is writable
	}
	if err := r.Grow(PageSize()); err != nil || r.Len() != 64*mib {
		t.Fatalf("shrinking Grow: err %v, Len %d", err, r.Len())
	}
}

func TestReservationCostsNoMemory(t *testing.T) {
	r := reserveT(t, 1<<34) // 16 GiB of address space
	if err := r.Grow(1 << 30); err != nil {
		t.Fatal(err)
	}
	n, err := r.Resident()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("untouched 1 GiB prefix has %d resident bytes", n)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	r := reserveT(t, 16*PageSize())
	if err := r.Grow(4 * PageSize()); err != nil {
		t.Fatal(err)
	}
	fill(r.Bytes(), 3)
	want := bytes.Clone(r.Bytes())
	p := PageSize()
	cases := []struct {
		name string
		call func() error
		want error
	}{
		{"reserve zero", func() error { _, err := Reserve(0, nil); return err }, ErrInvalidSize},
		{"reserve negative", func() error { _, err := Reserve(-1, nil); return err }, ErrInvalidSize},
		{"reserve read-only", func() error { _, err := Reserve(p, &Options{ReadOnly: true}); return err }, ErrReadOnly},
		{"grow negative", func() error { return r.Grow(-1) }, ErrInvalidSize},
		{"grow past reservation", func() error { return r.Grow(16*p + 1) }, ErrExhausted},
		{"release unaligned offset", func() error { return r.Release(1, p) }, ErrUnaligned},
		{"release unaligned length", func() error { return r.Release(0, p+1) }, ErrUnaligned},
		{"release past ready", func() error { return r.Release(0, 5*p) }, ErrInvalidSize},
		{"release negative", func() error { return r.Release(-p, p) }, ErrInvalidSize},
		{"reuse past ready", func() error { return r.Reuse(4*p, p) }, ErrInvalidSize},
		{"protect unaligned", func() error { return r.Protect(0, 1, ProtRead) }, ErrUnaligned},
		{"protect bad mode", func() error { return r.Protect(0, p, Prot(7)) }, ErrInvalidSize},
		{"sync past ready", func() error { return r.Sync(0, 5*p) }, ErrInvalidSize},
	}
	for _, c := range cases {
		if err := c.call(); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
	if r.Len() != 4*p || !bytes.Equal(r.Bytes(), want) {
		t.Fatal("bad input changed the region")
	}
}

// injected replaces a system call variable until the returned func (also run
// at cleanup) restores it.
func injected[F any](t *testing.T, v *F, f F) (restore func()) {
	old := *v
	*v = f
	restore = func() { *v = old }
	t.Cleanup(restore)
	return restore
}

func TestFailedGrowLeavesRegionUsable(t *testing.T) {
	r := reserveT(t, 64*PageSize())
	if err := r.Grow(2 * PageSize()); err != nil {
		t.Fatal(err)
	}
	fill(r.Bytes(), 5)
	want := bytes.Clone(r.Bytes())
	restore := injected(t, &protect, func(unsafe.Pointer, int, Prot) error { return syscall.ENOMEM })
	err := r.Grow(8 * PageSize())
	if !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("injected ENOMEM: got %v", err)
	}
	if r.Len() != 2*PageSize() || !bytes.Equal(r.Bytes(), want) {
		t.Fatal("failed Grow changed the region")
	}
	r.Bytes()[0] = 42 // still writable
	restore()
	if err := r.Grow(8 * PageSize()); err != nil {
		t.Fatalf("Grow after the failure cleared: %v", err)
	}
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "region"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestFailedFileGrowLeavesRegionUsable(t *testing.T) {
	f := tempFile(t)
	r, err := MapFile(f, 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Grow(PageSize()); err != nil {
		t.Fatal(err)
	}
	fill(r.Bytes(), 7)
	want := bytes.Clone(r.Bytes())
	restore := injected(t, &extendFile, func(*os.File, int64, int64) error { return syscall.ENOSPC })
	if err := r.Grow(4 * PageSize()); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("injected ENOSPC: got %v", err)
	}
	restore()
	injected(t, &mapFile, func(*os.File, int, unsafe.Pointer, int, Prot) error { return syscall.ENOMEM })
	if err := r.Grow(4 * PageSize()); !errors.Is(err, syscall.ENOMEM) {
		t.Fatalf("injected mmap ENOMEM: got %v", err)
	}
	if r.Len() != PageSize() || !bytes.Equal(r.Bytes(), want) {
		t.Fatal("failed Grow changed the file region")
	}
	if err := r.Sync(0, r.Len()); err != nil {
		t.Fatalf("region unusable after failed growth: %v", err)
	}
}

func TestBaseIsFixed(t *testing.T) {
	r := reserveT(t, 4*mib)
	base := r.Base()
	if base == nil || unsafe.SliceData(r.Bytes()) != (*byte)(base) {
		t.Fatalf("Base %p of an empty region, Bytes at %p", base, unsafe.SliceData(r.Bytes()))
	}
	for _, n := range []int{PageSize(), 4 * mib} {
		if err := r.Grow(n); err != nil {
			t.Fatal(err)
		}
		if r.Base() != base || unsafe.SliceData(r.Bytes()) != (*byte)(base) {
			t.Fatalf("after Grow(%d) Base %p, was %p", n, r.Base(), base)
		}
	}
	if err := r.Release(0, 4*mib); err != nil || r.Base() != base {
		t.Fatalf("after Release: Base %p, was %p (%v)", r.Base(), base, err)
	}
}

// retireOwner is an owner of regions for TestRetire.
type retireOwner struct{ r *Region }

func TestRetire(t *testing.T) {
	const n = 8 * mib
	r, err := Reserve(n, &Options{Name: "retired"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Grow(n); err != nil {
		t.Fatal(err)
	}
	fill(r.Bytes(), 1)
	closed := func() bool { return errors.Is(r.Grow(n), ErrClosed) }
	func() {
		o := &retireOwner{r}
		if err := Retire(o, o.r); err != nil {
			t.Fatal(err)
		}
		if check.On {
			if !closed() {
				t.Fatal("the checked build did not close a retired region at once")
			}
			return
		}
		if closed() {
			t.Fatal("a region closed while its owner is reachable")
		}
		if got, err := r.Resident(); err != nil || got != 0 {
			t.Fatalf("retired region has %d resident bytes (%v), want 0 at once", got, err)
		}
		if b := r.Bytes(); len(b) != n || b[0] != 0 || b[n-1] != 0 {
			t.Fatal("a retired region's pages do not read as zero while its owner is reachable")
		}
		runtime.KeepAlive(o)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !closed() && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if !closed() {
		t.Fatal("a retired region was not closed after its owner became unreachable")
	}
}

func TestReleaseDropsRSSAtOnce(t *testing.T) {
	const n = 64 * mib
	r := reserveT(t, n)
	if err := r.Grow(n); err != nil {
		t.Fatal(err)
	}
	fill(r.Bytes(), 1)
	before, err := RSS()
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Resident(); got != n {
		t.Fatalf("touched region has %d resident bytes, want %d", got, n)
	}
	if err := r.Release(0, n); err != nil {
		t.Fatal(err)
	}
	after, _ := RSS()
	if got, _ := r.Resident(); got != 0 {
		t.Fatalf("released region still has %d resident bytes", got)
	}
	if before-after < n-8*mib {
		t.Fatalf("RSS fell by %d bytes, want about %d", before-after, n)
	}
	if err := r.Reuse(0, n); err != nil {
		t.Fatal(err)
	}
	if b := r.Bytes(); b[0] != 0 || b[n-1] != 0 {
		t.Fatal("reused anonymous pages do not read as zero")
	}
}

func TestClosedRegion(t *testing.T) {
	r, err := Reserve(PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Grow(PageSize()); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 || len(r.Bytes()) != 0 {
		t.Fatal("closed region still has a view")
	}
	calls := map[string]func() error{
		"Grow":      func() error { return r.Grow(1) },
		"Release":   func() error { return r.Release(0, 0) },
		"Reuse":     func() error { return r.Reuse(0, 0) },
		"Protect":   func() error { return r.Protect(0, 0, ProtRead) },
		"Sync":      func() error { return r.Sync(0, 0) },
		"SyncAsync": func() error { return r.SyncAsync(0, 0) },
		"Resident":  func() error { _, err := r.Resident(); return err },
		"Close":     r.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestFileRegionGrowsAndPersists(t *testing.T) {
	f := tempFile(t)
	r, err := MapFile(f, 1<<30, &Options{Name: "col"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 0 {
		t.Fatalf("empty file mapped %d bytes", r.Len())
	}
	base := r.Bytes()
	for _, n := range []int{10, 3 * PageSize(), mib} {
		if err := r.Grow(n); err != nil {
			t.Fatal(err)
		}
	}
	b := r.Bytes()
	if unsafe.SliceData(b) != unsafe.SliceData(base) {
		t.Fatal("file region moved")
	}
	fill(b, 9)
	if err := r.SyncAsync(5, 100); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(0, len(b)); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(b)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	if st.Size() != mib {
		t.Fatalf("file is %d bytes, want %d", st.Size(), mib)
	}
	r2, err := MapFile(f, 2*mib, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r2.Bytes(), want) {
		t.Fatal("reopened file region lost data")
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := MapFile(f, PageSize(), nil); !errors.Is(err, ErrExhausted) {
		t.Fatalf("reserve smaller than the file: %v", err)
	}
}

func TestReadOnlyRegionFollowsWriter(t *testing.T) {
	f := tempFile(t)
	w, err := MapFile(f, 64*PageSize(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Grow(PageSize()); err != nil {
		t.Fatal(err)
	}
	w.Bytes()[0] = 1
	rf, err := os.Open(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	r, err := MapFile(rf, 64*PageSize(), &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Len() != PageSize() || r.Bytes()[0] != 1 {
		t.Fatalf("reader sees %d bytes", r.Len())
	}
	if err := r.Grow(2 * PageSize()); !errors.Is(err, ErrShortFile) {
		t.Fatalf("reader grew past the file: %v", err)
	}
	if err := r.Protect(0, PageSize(), ProtReadWrite); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only made writable: %v", err)
	}
	if err := w.Grow(2 * PageSize()); err != nil {
		t.Fatal(err)
	}
	w.Bytes()[PageSize()] = 2
	if err := r.Grow(2 * PageSize()); err != nil {
		t.Fatal(err)
	}
	if r.Bytes()[PageSize()] != 2 {
		t.Fatal("reader does not see the writer's append")
	}
}

func TestProtectFaults(t *testing.T) {
	r := reserveT(t, PageSize())
	if err := r.Grow(PageSize()); err != nil {
		t.Fatal(err)
	}
	if err := r.Protect(0, PageSize(), ProtRead); err != nil {
		t.Fatal(err)
	}
	if !faults(func() { r.Bytes()[0] = 1 }) {
		t.Fatal("write to a read-only page did not fault")
	}
	_ = r.Bytes()[0] // reading is allowed
	if err := r.Protect(0, PageSize(), ProtReadWrite); err != nil {
		t.Fatal(err)
	}
	if faults(func() { r.Bytes()[0] = 1 }) {
		t.Fatal("write to a read-write page faulted")
	}
}

// faults reports whether f hit a memory fault, turned into a panic.
func faults(f func()) (hit bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { hit = recover() != nil }()
	f()
	return false
}

func TestNameShowsInMaps(t *testing.T) {
	const name = "offheap-vmem-test"
	r, err := Reserve(PageSize(), &Options{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := nameRange(r.base, r.size, name); err != nil {
		t.Skipf("kernel cannot name anonymous mappings: %v", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(maps), "[anon:"+name+"]") {
		t.Fatal("named region missing from /proc/self/maps")
	}
}

func TestHugePagesOption(t *testing.T) {
	r, err := Reserve(8*mib, &Options{HugePages: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Grow(8 * mib); err != nil {
		t.Fatal(err)
	}
	fill(r.Bytes(), 1)
}

// TestStaleViewAfterRelease reads a released page through a view taken before
// Release, in a child process. The checked build must crash the child with a
// fault; the normal build reads zero.
func TestStaleViewAfterRelease(t *testing.T) {
	if os.Getenv("VMEM_STALE_CHILD") == "1" {
		r, err := Reserve(PageSize(), nil)
		if err != nil {
			os.Exit(3)
		}
		_ = r.Grow(PageSize())
		stale := r.Bytes()
		stale[0] = 1
		_ = r.Release(0, PageSize())
		os.Stdout.WriteString("read " + string('0'+stale[0]) + "\n")
		os.Exit(0)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestStaleViewAfterRelease$")
	cmd.Env = append(os.Environ(), "VMEM_STALE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if check.On {
		if err == nil || !strings.Contains(string(out), "unexpected fault address") {
			t.Fatalf("checked build: stale read did not fault (err %v):\n%s", err, out)
		}
		return
	}
	if err != nil || !strings.Contains(string(out), "read 0") {
		t.Fatalf("normal build: stale read should see zero (err %v):\n%s", err, out)
	}
}

// TestConcurrentGrowAndRead grows a region from one goroutine while others
// write and read the prefix they already hold; run it with -race.
func TestConcurrentGrowAndRead(t *testing.T) {
	const pages = 256
	r := reserveT(t, pages*PageSize())
	if err := r.Grow(PageSize()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	errs := make(chan error, 4)
	for g := range 3 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				b := r.Bytes()
				off := g * 8
				b[off] = byte(g)
				if b[off] != byte(g) {
					errs <- errors.New("lost a write")
					return
				}
			}
		}()
	}
	for n := 2; n <= pages; n++ {
		if err := r.Grow(n * PageSize()); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if r.Len() != pages*PageSize() {
		t.Fatalf("Len %d", r.Len())
	}
}
