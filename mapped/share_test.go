package mapped_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/offheap/offheap/mapped"
	"github.com/offheap/offheap/vmem"
)

// Tests of one file shared by a writer and read-only followers, in one
// process and across two.

// churnEnv names the file a child process churns as a writer (see churn);
// churnForEnv says for how long.
const (
	churnEnv    = "OFFHEAP_MAPPED_CHURN_CHILD"
	churnForEnv = "OFFHEAP_MAPPED_CHURN_FOR"
)

// churnChild is the child process's part of TestFollowerNeverFaultsAcrossProcesses.
func churnChild(path string) error {
	d, err := time.ParseDuration(os.Getenv(churnForEnv))
	if err != nil {
		return err
	}
	end := time.Now().Add(d)
	return churn(path, uint64(os.Getpid()), func() bool { return time.Now().After(end) })
}

// churn writes the file at path through the library until stop: it opens
// it, appends a random number of rows, syncs, jumps back (QuestDB's
// truncate) now and then, and closes it, which cuts the file, over and over.
func churn(path string, seed uint64, stop func() bool) error {
	rnd := rand.New(rand.NewPCG(seed, 1))
	for !stop() {
		m, err := mapped.OpenFile(path, &mapped.Options{ExtendSize: 16 << 10})
		if err != nil {
			return err
		}
		for range rnd.IntN(40) {
			switch rnd.IntN(8) {
			case 0:
				err = m.Jump(rnd.IntN(m.Len() + 1))
			case 1:
				err = m.Sync()
			default:
				for range rnd.IntN(4000) {
					if err = m.AppendInt64(int64(m.Len())); err != nil {
						break
					}
				}
			}
			if err != nil {
				_ = m.Close()
				return err
			}
		}
		if err := m.Close(); err != nil {
			return err
		}
	}
	return nil
}

// follow opens the file at path read-only and refreshes it over and over
// until stop, reading every byte it maps each time. An open or Refresh may
// fail only with vmem.ErrInUse; a fault (SIGBUS, SIGSEGV) is returned as an
// error instead of killing the process.
func follow(path string, stop func() bool) (reads int, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("follower faulted after %d reads: %v", reads, p)
		}
	}()
	for !stop() {
		m, err := mapped.OpenFile(path, &mapped.Options{ReadOnly: true})
		if errors.Is(err, vmem.ErrInUse) {
			continue
		}
		if err != nil {
			return reads, fmt.Errorf("open racing the writer: %w", err)
		}
		for range 20 {
			if err := m.Refresh(); err != nil && !errors.Is(err, vmem.ErrInUse) {
				_ = m.Close()
				return reads, fmt.Errorf("refresh racing the writer: %w", err)
			}
			_ = bytes.IndexByte(m.Bytes(0, m.Len()), 0xFF) // touch every mapped byte
			reads++
		}
		if err := m.Close(); err != nil {
			return reads, err
		}
	}
	return reads, nil
}

// raceBudget is how long the follower tests race.
func raceBudget() time.Duration {
	if testing.Short() {
		return 300 * time.Millisecond
	}
	return 1500 * time.Millisecond
}

// TestFollowerNeverFaults races a writer that appends, jumps back and
// closes (cutting the file) against followers that open, refresh and read
// everything they map: no follower may fault or fail with anything but a
// typed error.
func TestFollowerNeverFaults(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	stop := done.Load
	time.AfterFunc(raceBudget(), func() { done.Store(true) })
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() { errs <- churn(path, 1, stop) })
	var reads [2]int
	for i := range reads {
		wg.Go(func() {
			var err error
			reads[i], err = follow(path, stop)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("followers read the file %d times", reads[0]+reads[1])
}

// TestFollowerNeverFaultsAcrossProcesses is TestFollowerNeverFaults with the
// writer in another process.
func TestFollowerNeverFaultsAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), churnEnv+"="+path, churnForEnv+"="+raceBudget().String())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var childErr error
	var gone atomic.Bool
	exited := make(chan struct{})
	go func() { childErr = cmd.Wait(); gone.Store(true); close(exited) }()
	reads, err := follow(path, gone.Load)
	<-exited
	if err != nil {
		t.Fatal(err)
	}
	if childErr != nil {
		t.Fatalf("writer process: %v\n%s", childErr, out.Bytes())
	}
	t.Logf("follower read the file %d times while another process wrote it", reads)
}

// TestSecondWritableOpenInUse: a file has one writable Memory at a time;
// read-only ones open beside it.
func TestSecondWritableOpenInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	w := openT(t, path, nil)
	_ = w.AppendInt64(42)
	if m, err := mapped.OpenFile(path, nil); !errors.Is(err, vmem.ErrInUse) {
		if m != nil {
			_ = m.Close()
		}
		t.Fatalf("second writable open: %v, want vmem.ErrInUse", err)
	}
	r := openT(t, path, &mapped.Options{ReadOnly: true})
	if r.Int64(0) != 42 {
		t.Fatal("reader beside the writer does not see its row")
	}
	if err := w.AppendInt64(43); err != nil {
		t.Fatal("writer unusable after a refused second open:", err)
	}
	_ = r.Close() // first, or the writer's Close would keep the file's length for it
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openT(t, path, nil)
	if w.Len() != 16 || w.Int64(8) != 43 {
		t.Fatalf("reopened with %d bytes", w.Len())
	}
	_ = w.Close()
}

// TestWriterCloseKeepsWhatReaderMaps: a writer that jumps back and closes
// does not cut the file under a reader that maps more of it; the reader
// reads zeros there, without a fault. With no reader, Close cuts.
func TestWriterCloseKeepsWhatReaderMaps(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	w := openT(t, path, &mapped.Options{ExtendSize: 64 << 10})
	for i := range 20000 {
		_ = w.AppendInt64(int64(i))
	}
	r := openT(t, path, &mapped.Options{ReadOnly: true})
	defer r.Close()
	if err := w.Jump(100); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < int64(r.Len()) {
		t.Fatalf("writer cut the file to %d bytes under a reader of %d", st.Size(), r.Len())
	}
	var tail []byte
	if faults(func() { tail = bytes.Clone(r.Bytes(100, r.Len()-100)) }) {
		t.Fatal("reader faulted")
	}
	if r.Int64(96) != 12 || !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Fatal("reader sees old rows past the writer's end")
	}
	_ = r.Close()
	w = openT(t, path, nil)
	if err := w.Jump(100); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Size() != 100 {
		t.Fatalf("Close without readers left %d bytes, want 100", st.Size())
	}
}

// faults reports whether f hit a memory fault (SIGBUS, SIGSEGV).
func faults(f func()) (hit bool) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() { hit = recover() != nil }()
	f()
	return false
}

// TestReaderOpenedBeforeWriter: a reader that maps a file before its writer
// opens keeps what it maps readable while the writer jumps back to 0,
// rewrites and closes: it sees the new bytes and zeros, never a fault, and
// the file keeps the length the reader maps.
func TestReaderOpenedBeforeWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xAB}, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	r := openT(t, path, &mapped.Options{ReadOnly: true})
	defer r.Close()
	w := openT(t, path, nil)
	if err := w.Jump(0); err != nil {
		t.Fatal(err)
	}
	if err := w.AppendBytes(bytes.Repeat([]byte{0xCD}, 100)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	if faults(func() { got = bytes.Clone(r.Bytes(0, r.Len())) }) {
		t.Fatal("reader faulted")
	}
	want := append(bytes.Repeat([]byte{0xCD}, 100), make([]byte, 64<<10-100)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("reader sees %d bytes, not the writer's 100 then zeros", len(got))
	}
	if st, err := os.Stat(path); err != nil || st.Size() != 64<<10 {
		t.Fatalf("the writer cut the file under its reader (%v)", err)
	}
}
