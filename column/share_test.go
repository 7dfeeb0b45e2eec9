package column_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/offheap/offheap/column"
	"github.com/offheap/offheap/vmem"
)

// holdEnv names the directory where a child process holds two columns open
// for writing (see holdChild).
const holdEnv = "OFFHEAP_COLUMN_HOLD_CHILD"

// holdChild opens a fixed and a variable column in dir, appends and syncs
// 1000 rows to each, says "ready", waits for its stdin to close, then
// appends 1000 more rows, closes both and says "done".
func holdChild(dir string) error {
	f, err := column.OpenFixed[int64](filepath.Join(dir, "f"), nil)
	if err != nil {
		return err
	}
	v, err := column.OpenVar(filepath.Join(dir, "v"), nil)
	if err != nil {
		return err
	}
	appendRows := func() error {
		for range 1000 {
			if err := f.Append(fixedRow(f.Rows())); err != nil {
				return err
			}
			if err := v.AppendStr(fmt.Sprint(v.Rows())); err != nil {
				return err
			}
		}
		return errors.Join(f.Sync(), v.Sync())
	}
	if err := appendRows(); err != nil {
		return err
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := appendRows(); err != nil {
		return err
	}
	if err := errors.Join(f.Close(), v.Close()); err != nil {
		return err
	}
	fmt.Println("done")
	return nil
}

// openAll tries to open the fixed and the variable column in dir, closing
// what opened, and returns the errors.
func openAll(dir string) (fixedErr, varErr error) {
	f, fixedErr := column.OpenFixed[int64](filepath.Join(dir, "f"), nil)
	closeIf(f, fixedErr)
	v, varErr := column.OpenVar(filepath.Join(dir, "v"), nil)
	closeIf(v, varErr)
	return fixedErr, varErr
}

// TestSecondWriterInAnotherProcessInUse: while another process has the
// columns open, opening them here is vmem.ErrInUse and changes nothing;
// the other process's later appends then all survive.
func TestSecondWriterInAnotherProcessInUse(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		t.Fatalf("child: %q", lines.Text())
	}
	paths := []string{filepath.Join(dir, "f"), filepath.Join(dir, "v"), filepath.Join(dir, "v"+column.DataSuffix)}
	var before []fileState
	for _, p := range paths {
		before = append(before, stateOf(t, p))
	}
	fixedErr, varErr := openAll(dir)
	if !errors.Is(fixedErr, vmem.ErrInUse) || !errors.Is(varErr, vmem.ErrInUse) {
		t.Errorf("opening columns another process writes: %v and %v, want vmem.ErrInUse", fixedErr, varErr)
	}
	for i, p := range paths {
		if s := stateOf(t, p); !s.equal(before[i]) {
			t.Errorf("refused open changed %s from %v to %v", p, before[i], s)
		}
	}
	_ = stdin.Close()
	if !lines.Scan() || lines.Text() != "done" {
		t.Fatalf("child did not finish: %q", lines.Text())
	}
	f := openFixed[int64](t, paths[0], nil)
	defer f.Close()
	v := openVar(t, paths[1], nil)
	defer v.Close()
	if f.Rows() != 2000 || v.Rows() != 2000 {
		t.Fatalf("after the other writer closed: %d and %d rows, want 2000", f.Rows(), v.Rows())
	}
	for i := range 2000 {
		if s, _ := v.Str(i); f.Get(i) != fixedRow(i) || s != fmt.Sprint(i) {
			t.Fatalf("row %d lost", i)
		}
	}
}

// TestSecondWriterInUse: in one process too, a column open for writing
// cannot be opened again until closed; the first handle is unharmed.
func TestSecondWriterInUse(t *testing.T) {
	dir := t.TempDir()
	f := openFixed[int64](t, filepath.Join(dir, "f"), nil)
	v := openVar(t, filepath.Join(dir, "v"), nil)
	_ = f.Append(1)
	_ = v.AppendStr("one")
	fixedErr, varErr := openAll(dir)
	if !errors.Is(fixedErr, vmem.ErrInUse) || !errors.Is(varErr, vmem.ErrInUse) {
		t.Fatalf("second opens: %v and %v, want vmem.ErrInUse", fixedErr, varErr)
	}
	if err := errors.Join(f.Append(2), v.AppendStr("two"), f.Close(), v.Close()); err != nil {
		t.Fatal(err)
	}
	f = openFixed[int64](t, filepath.Join(dir, "f"), nil)
	defer f.Close()
	v = openVar(t, filepath.Join(dir, "v"), nil)
	defer v.Close()
	if s, _ := v.Str(1); f.Rows() != 2 || f.Get(1) != 2 || s != "two" {
		t.Fatalf("reopened with %d rows", f.Rows())
	}
}
