package mapped_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/offheap/offheap/internal/testfs"
	"github.com/offheap/offheap/mapped"
)

// The crash test runs this test binary again as a child (crashEnv set to a
// file path) that appends to a file Memory and jumps back (QuestDB's
// truncate) forever, and kills it with SIGKILL at a random moment, many
// times over, each child reopening what the last one left.

const (
	crashEnv     = "OFFHEAP_MAPPED_CRASH_CHILD"
	crashSeedEnv = "OFFHEAP_MAPPED_CRASH_SEED"
)

// crashLimit is the length at which the child always jumps back, so the
// file stays small.
const crashLimit = 8 << 20

// word is the uint64 the crash child writes at off in generation gen: never
// zero, and it names both, so a word that is out of place or older than the
// words before it shows.
func word(gen, off int) uint64 { return uint64(gen)<<40 | uint64(off/8) }

// crashChild reopens the file at path, takes what the last child wrote to
// end at the first zero word (as a format on top would, so a run a kill
// inside a Jump left after zeros goes), jumps there, and then appends words
// of one generation at a time, jumping back to a random word (and starting
// the next generation) now and then. It says "J" on stdout before each jump
// and "D" after it, so the parent knows when it was killed mid-jump.
func crashChild(path string) error {
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	m, err := mapped.OpenFile(path, &mapped.Options{ExtendSize: 64 << 10})
	if err != nil {
		return err
	}
	end, gen := 0, 0
	for ; end+8 <= m.Len() && m.Uint64(end) != 0; end += 8 {
		gen = max(gen, int(m.Uint64(end)>>40))
	}
	if err := m.Jump(end); err != nil {
		return err
	}
	gen++
	rnd := rand.New(rand.NewPCG(seed, 3))
	say := func(s string) { _, _ = os.Stdout.WriteString(s + "\n") }
	say("ready")
	for {
		if m.Len() > crashLimit || rnd.IntN(32) == 0 {
			say("J")
			if err := m.Jump(rnd.IntN(m.Len()/8+1) * 8); err != nil {
				return err
			}
			gen++
			say("D")
			continue
		}
		for range rnd.IntN(20000) {
			if err := m.AppendUint64(word(gen, m.Len())); err != nil {
				return err
			}
		}
	}
}

// TestCrashLeavesNoDroppedBytes kills a child that appends and jumps back
// at random moments, and checks the file each time against the crash
// contract of OpenFile: what was written, each word in its place, then
// zeros; never a word a Jump back dropped after words written since. Only
// a kill inside a Jump (which has not returned, so has not yet dropped
// anything) may leave part of what it was dropping.
func TestCrashLeavesNoDroppedBytes(t *testing.T) {
	cycles, budget := 60, 10*time.Second
	if testing.Short() {
		cycles, budget = 10, 3*time.Second
	}
	path := filepath.Join(t.TempDir(), "f")
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, 4))
	start := time.Now()
	done, midJump := 0, 0
	for done < cycles && time.Since(start) < budget {
		inJump := killChild(t, path, seed+uint64(done), time.Duration(rnd.IntN(30_000))*time.Microsecond)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkCrashed(b, inJump); err != nil {
			t.Fatalf("cycle %d (seed %d), killed %s: %v", done, seed, map[bool]string{true: "inside a Jump", false: "outside a Jump"}[inJump], err)
		}
		if inJump {
			midJump++
		}
		done++
	}
	t.Logf("%d kill -9 cycles in %v (seed %d), %d of them inside a Jump back: no dropped word came back",
		done, time.Since(start).Round(time.Millisecond), seed, midJump)
	if done < min(cycles, 5) {
		t.Fatalf("only %d cycles ran in %v", done, budget)
	}
}

// checkCrashed checks a crashed file: each non-zero word in its place and
// no older than those before it, and after the first zero word only zeros,
// except that a kill inside a Jump may leave one run of the words it was
// dropping after a run of zeros.
func checkCrashed(b []byte, inJump bool) error {
	if len(b)%8 != 0 {
		return fmt.Errorf("%d bytes, not whole words", len(b))
	}
	gen, zeros, gaps := 0, false, 0
	for off := 0; off < len(b); off += 8 {
		w := binary.NativeEndian.Uint64(b[off:])
		switch {
		case w == 0:
			zeros = true
			continue
		case int(w&(1<<40-1)) != off/8:
			return fmt.Errorf("the word at %d belongs at %d", off, int(w&(1<<40-1))*8)
		case int(w>>40) < gen:
			return fmt.Errorf("the word at %d is of generation %d, after words of generation %d: a dropped word came back", off, w>>40, gen)
		case zeros:
			if gaps++; !inJump || gaps > 1 {
				return fmt.Errorf("the word at %d (generation %d) follows zeros", off, w>>40)
			}
		}
		gen, zeros = int(w>>40), false
	}
	return nil
}

// killChild starts a crash child on path, lets it run for d once it is
// appending, kills it with SIGKILL and reports whether it was inside a Jump.
func killChild(t *testing.T, path string, seed uint64, d time.Duration) (inJump bool) {
	t.Helper()
	env := []string{crashEnv + "=" + path, crashSeedEnv + "=" + strconv.FormatUint(seed, 10)}
	testfs.KillChild(t, env, d, func(line string) { inJump = line == "J" })
	return inJump
}
