package column_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/offheap/offheap/column"
	"github.com/offheap/offheap/internal/testfs"
)

// The crash test runs this test binary again as a child (crashChildEnv set
// to a directory) that appends rows forever, syncing now and then, and kills
// it with SIGKILL at a random moment, many times over.

const (
	crashChildEnv = "OFFHEAP_COLUMN_CRASH_CHILD"
	crashSeedEnv  = "OFFHEAP_COLUMN_CRASH_SEED"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(holdEnv); dir != "" {
		if err := holdChild(dir); err != nil {
			fmt.Fprintln(os.Stderr, "hold child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	if dir := os.Getenv(crashChildEnv); dir != "" {
		seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
		if err := crashChild(dir, seed); err != nil {
			fmt.Fprintln(os.Stderr, "crash child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fixedRow is row i's value in the crash test's fixed column.
func fixedRow(i int) int64 { return int64(uint64(i)*0x9e3779b97f4a7c15 ^ 0x5555aaaa) }

// varRow is row i's value in the crash test's variable column (ok false: null).
func varRow(i int) (string, bool) {
	if i%10 == 3 {
		return "", false
	}
	b := make([]byte, i%23)
	for j := range b {
		b[j] = 'a' + byte((i+j)%26)
	}
	return string(b), true
}

// crashChild appends rows to both columns in batches of random size, syncing
// after each batch and reporting each successful sync's row count on stdout
// ("F n" or "V n"), until it is killed.
func crashChild(dir string, seed uint64) error {
	o := &column.Options{ExtendSize: 64 << 10}
	f, err := column.OpenFixed[int64](filepath.Join(dir, "f"), o)
	if err != nil {
		return err
	}
	v, err := column.OpenVar(filepath.Join(dir, "v"), o)
	if err != nil {
		return err
	}
	rnd := rand.New(rand.NewPCG(seed, 1))
	say := func(format string, args ...any) { _, _ = os.Stdout.WriteString(fmt.Sprintf(format, args...)) }
	say("ready\n")
	for {
		for range 1 + rnd.IntN(3000) {
			if err := f.Append(fixedRow(f.Rows())); err != nil {
				return err
			}
			if s, ok := varRow(v.Rows()); ok {
				err = v.AppendStr(s)
			} else {
				err = v.AppendNull()
			}
			if err != nil {
				return err
			}
		}
		if err := f.Sync(); err != nil {
			return err
		}
		say("F %d\n", f.Rows())
		if err := v.Sync(); err != nil {
			return err
		}
		say("V %d\n", v.Rows())
	}
}

// TestCrashRecovery kills a child appending to a fixed and a variable column
// at random moments, many times, and checks after each kill that reopening
// gives at least every row the child had synced, each one exactly as written.
func TestCrashRecovery(t *testing.T) {
	cycles, budget := 100, 12*time.Second
	if testing.Short() {
		cycles, budget = 10, 5*time.Second
	}
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, 2))
	start := time.Now()
	done, killedMidway := 0, 0
	var lastRows int
	for done < cycles && time.Since(start) < budget {
		synced := runAndKill(t, dir, seed+uint64(done), time.Duration(rnd.IntN(40_000))*time.Microsecond)
		rowsF, rowsV := verifyAfterCrash(t, dir, synced)
		if rowsF > synced['F'] || rowsV > synced['V'] {
			killedMidway++ // a sync had committed but not yet been reported
		}
		lastRows = rowsF
		done++
	}
	t.Logf("%d kill -9 cycles in %v (seed %d): every reopen had every synced row and no torn row; %d rows at the end; %d kills landed after a commit but before its report",
		done, time.Since(start).Round(time.Millisecond), seed, lastRows, killedMidway)
	if done < min(cycles, 10) {
		t.Fatalf("only %d cycles ran in %v", done, budget)
	}
}

// runAndKill starts a child, waits until it is appending, lets it run for d,
// kills it with SIGKILL and returns the last row counts it reported synced.
func runAndKill(t *testing.T, dir string, seed uint64, d time.Duration) map[byte]int {
	t.Helper()
	synced := map[byte]int{}
	env := []string{crashChildEnv + "=" + dir, crashSeedEnv + "=" + strconv.FormatUint(seed, 10)}
	testfs.KillChild(t, env, d, func(line string) {
		kind, n, ok := strings.Cut(line, " ")
		if !ok || len(kind) != 1 {
			t.Fatalf("child said %q", line)
		}
		synced[kind[0]], _ = strconv.Atoi(n)
	})
	return synced
}

// verifyAfterCrash reopens both columns and checks them against the rows the
// child reported synced, then closes them (which commits what was found).
func verifyAfterCrash(t *testing.T, dir string, synced map[byte]int) (rowsF, rowsV int) {
	t.Helper()
	f, err := column.OpenFixed[int64](filepath.Join(dir, "f"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := column.OpenVar(filepath.Join(dir, "v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if f.Rows() < synced['F'] || v.Rows() < synced['V'] {
		t.Fatalf("reopened with %d fixed and %d var rows; %d and %d were synced", f.Rows(), v.Rows(), synced['F'], synced['V'])
	}
	for i, x := range f.Values() {
		if x != fixedRow(i) {
			t.Fatalf("fixed row %d of %d is %#x, want %#x", i, f.Rows(), x, fixedRow(i))
		}
	}
	for i := range v.Rows() {
		s, ok := v.Str(i)
		if ws, wok := varRow(i); s != ws || ok != wok {
			t.Fatalf("var row %d of %d is %q (%v), want %q (%v)", i, v.Rows(), s, ok, ws, wok)
		}
	}
	return f.Rows(), v.Rows()
}
