// The traces the hit-ratio cases replay: the built-in set (traces/, embedded)
// or a directory named by --cache-traces, each a capacities.txt and a
// <name>.keys.gz per trace, read and checked here.

package cachebench

import (
	"bufio"
	"compress/gzip"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

//go:embed traces/*.keys.gz traces/capacities.txt
var builtinTraces embed.FS

// Errors of a trace set that cannot be replayed; test for them with errors.Is.
var (
	ErrBadCapacity  = errors.New("not an integer from 1 to 2^30") // a capacity in capacities.txt
	ErrBadKey       = errors.New("not a decimal uint64")          // a line of a .keys.gz
	ErrBadGzip      = errors.New("not a valid gzip stream")       // a .keys.gz that does not decompress
	ErrNoCapacities = errors.New("no capacities listed")          // a trace without a capacities.txt line, or a line without capacities
	ErrListedTwice  = errors.New("listed twice")                  // a trace named on two lines of capacities.txt
	ErrNoTraces     = errors.New("no traces")                     // a directory with no *.keys.gz, or a capacities.txt with no lines
	ErrNoKeys       = errors.New("no keys")                       // a .keys.gz with no lines
	ErrBadName      = errors.New("not a file name")               // a trace name in capacities.txt with a path separator
)

const (
	traceExt       = ".keys.gz"
	capacitiesFile = "capacities.txt"
	// maxCapacity bounds a capacity: an entry index fits in an int32.
	maxCapacity = 1 << 30
	// maxKeyLine is the longest line a .keys.gz may have (a uint64 has 20 digits).
	maxKeyLine = 64
)

// traceSet is a set of traces, each with the capacities to replay it at,
// in the order capacities.txt lists them.
type traceSet struct {
	fsys   fs.FS
	dir    string // how errors name the directory
	traces []trace
}

// trace is one trace of a set: its name (case hit-<name>) and capacities.
type trace struct {
	name       string
	capacities []int
}

// builtinTraceSet returns the traces built into the command.
func builtinTraceSet() (traceSet, error) {
	sub, err := fs.Sub(builtinTraces, "traces")
	if err != nil {
		return traceSet{}, err
	}
	return openTraceSet(sub, "traces")
}

// dirTraceSet returns the traces of directory dir.
func dirTraceSet(dir string) (traceSet, error) {
	dir = filepath.Clean(dir)
	st, err := os.Stat(dir)
	var pe *fs.PathError
	switch {
	case errors.As(err, &pe):
		return traceSet{}, fmt.Errorf("read traces %s: %w", dir, pe.Err)
	case err != nil:
		return traceSet{}, fmt.Errorf("read traces %s: %w", dir, err)
	case !st.IsDir():
		return traceSet{}, fmt.Errorf("read traces %s: %w", dir, syscall.ENOTDIR)
	}
	return openTraceSet(os.DirFS(dir), dir)
}

// openTraceSet reads fsys's capacities.txt, checks that every *.keys.gz has
// a line and every line a file, and that each file starts as gzip does.
func openTraceSet(fsys fs.FS, dir string) (traceSet, error) {
	s := traceSet{fsys: fsys, dir: dir}
	files, err := fs.Glob(fsys, "*"+traceExt)
	if err != nil {
		return s, err
	}
	if len(files) == 0 {
		return s, fmt.Errorf("read traces %s: *%s: %w", dir, traceExt, ErrNoTraces)
	}
	if s.traces, err = s.readCapacities(); err != nil {
		return s, err
	}
	for _, f := range files {
		name := strings.TrimSuffix(f, traceExt)
		if !slices.ContainsFunc(s.traces, func(t trace) bool { return t.name == name }) {
			return s, fmt.Errorf("read traces %s: %s: %w in %s", dir, f, ErrNoCapacities, capacitiesFile)
		}
	}
	for _, t := range s.traces {
		if err := s.checkHeader(t.name); err != nil {
			return s, err
		}
	}
	return s, nil
}

// readCapacities parses capacities.txt: per line a trace name, then its
// capacities; '#' starts a comment; blank lines are skipped.
func (s traceSet) readCapacities() ([]trace, error) {
	b, err := fs.ReadFile(s.fsys, capacitiesFile)
	if err != nil {
		return nil, s.fileError(capacitiesFile, err)
	}
	var ts []trace
	for i, line := range strings.Split(string(b), "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		t, err := parseTraceLine(f, ts)
		if err != nil {
			return nil, fmt.Errorf("read %s line %d: %w", s.path(capacitiesFile), i+1, err)
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("read %s: %w", s.path(capacitiesFile), ErrNoTraces)
	}
	return ts, nil
}

// parseTraceLine parses the fields of one capacities.txt line; seen are
// the traces of the lines before it.
func parseTraceLine(f []string, seen []trace) (trace, error) {
	t := trace{name: f[0]}
	switch {
	case strings.ContainsAny(t.name, `/\`) || t.name == "." || t.name == "..":
		return t, fmt.Errorf("trace %q: %w", t.name, ErrBadName)
	case slices.ContainsFunc(seen, func(o trace) bool { return o.name == t.name }):
		return t, fmt.Errorf("trace %s: %w", t.name, ErrListedTwice)
	case len(f) == 1:
		return t, fmt.Errorf("trace %s: %w", t.name, ErrNoCapacities)
	}
	for _, c := range f[1:] {
		n, err := strconv.Atoi(c)
		if err != nil || n <= 0 || n > maxCapacity {
			return t, fmt.Errorf("trace %s: capacity %q: %w", t.name, c, ErrBadCapacity)
		}
		t.capacities = append(t.capacities, n)
	}
	return t, nil
}

// checkHeader opens trace name's file and reads its gzip header, so that a
// file that is missing or not gzip fails the plan, not a run.
func (s traceSet) checkHeader(name string) error {
	f, err := s.fsys.Open(name + traceExt)
	if err != nil {
		return s.fileError(name+traceExt, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return s.gzipError(name, err)
	}
	return zr.Close()
}

// keys reads every key of trace name, in request order.
func (s traceSet) keys(name string) ([]uint64, error) {
	f, err := s.fsys.Open(name + traceExt)
	if err != nil {
		return nil, s.fileError(name+traceExt, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<16))
	if err != nil {
		return nil, s.gzipError(name, err)
	}
	keys, err := s.parseKeys(name, zr)
	if err == nil && len(keys) == 0 {
		err = fmt.Errorf("read %s: %w", s.path(name+traceExt), ErrNoKeys)
	}
	return keys, err
}

// parseKeys reads one decimal uint64 per line from r.
func (s traceSet) parseKeys(name string, r io.Reader) ([]uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxKeyLine)
	var keys []uint64
	for line := 1; sc.Scan(); line++ {
		k, ok := parseKey(sc.Bytes())
		if !ok {
			return nil, fmt.Errorf("read %s line %d: key %q: %w", s.path(name+traceExt), line, sc.Bytes(), ErrBadKey)
		}
		keys = append(keys, k)
	}
	switch err := sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		return nil, fmt.Errorf("read %s line %d: line longer than %d bytes: %w", s.path(name+traceExt), len(keys)+1, maxKeyLine, ErrBadKey)
	case err != nil:
		return nil, s.gzipError(name, err)
	}
	return keys, nil
}

// parseKey parses a decimal uint64 of 1 to 20 digits, nothing else.
func parseKey(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var k uint64
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 || k > (1<<64-1-d)/10 {
			return 0, false
		}
		k = k*10 + d
	}
	return k, true
}

// path names file of the set in errors.
func (s traceSet) path(file string) string { return path.Join(filepath.ToSlash(s.dir), file) }

// fileError names the file once: an fs.PathError's own path is relative to
// the set, so its cause is kept and the path replaced.
func (s traceSet) fileError(file string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s %s: %w", pe.Op, s.path(file), pe.Err)
	}
	return fmt.Errorf("read %s: %w", s.path(file), err)
}

func (s traceSet) gzipError(name string, err error) error {
	return fmt.Errorf("read %s: %w: %w", s.path(name+traceExt), ErrBadGzip, err)
}
