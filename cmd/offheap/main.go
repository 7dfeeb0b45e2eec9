// Command offheap reproduces, on your machine, the benchmark of each design
// offheap is built on, side by side with its baselines, and writes a report.
//
// Usage:
//
//	offheap bench [flags] [suite...]
//
// With no suite named, every suite runs. Flags:
//
//	--json          print one JSON object per result line instead of tables
//	--quick         small sizes: every suite finishes in well under a minute
//	--out DIR       also write DIR/report.md with PNG plots
//	--reps N        runs per figure; the median is reported (default 5)
//	--benchtime D   duration of each Go-benchmark figure (default 300ms, quick 50ms)
//	--max-mem MIB   memory any one measurement may use (default: a quarter of RAM)
//	--cases REGEXP  run only the cases whose name matches (hit- for the cache suite's hit ratios)
//	--list          list the suites and exit
//
// Suites add their own flags, prefixed with their name (--vmem-max).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"golang.org/x/term"

	"github.com/offheap/offheap/cmd/offheap/internal/arenabench"
	"github.com/offheap/offheap/cmd/offheap/internal/bench"
	"github.com/offheap/offheap/cmd/offheap/internal/cachebench"
	"github.com/offheap/offheap/cmd/offheap/internal/exchangebench"
	"github.com/offheap/offheap/cmd/offheap/internal/mappedbench"
	"github.com/offheap/offheap/cmd/offheap/internal/poolbench"
	"github.com/offheap/offheap/cmd/offheap/internal/vmembench"
)

// suites returns every suite, each with its own flag values, in the order
// they run and are listed. Adding a suite is one line here.
func suites() []bench.Suite {
	return []bench.Suite{
		vmembench.Suite(),
		mappedbench.Suite(),
		poolbench.Suite(),
		arenabench.Suite(),
		cachebench.Suite(),
		exchangebench.Suite(),
	}
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "offheap:", err)
		}
		os.Exit(2)
	}
}

const usage = "usage: offheap bench [--json] [--quick] [--out DIR] [--reps N] [--benchtime D] [--max-mem MIB] [--cases REGEXP] [--list] [suite...]"

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "bench" {
		fmt.Fprintln(stderr, usage)
		return errors.New("the only command is bench")
	}
	all := suites()
	o, err := parse(args[1:], all, stderr)
	if err != nil {
		return err
	}
	if o.list {
		for _, s := range all {
			fmt.Fprintf(stdout, "%-10s %s\n", s.Name, s.Doc)
		}
		return nil
	}
	chosen, err := bench.Lookup(all, o.names)
	if err != nil {
		return err
	}
	runner := bench.Runner{Config: o.cfg}
	if o.json {
		runner.JSON = stdout
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		runner.Progress = stderr
	}
	var outcomes []bench.Outcome
	for _, s := range chosen {
		out, err := runner.Run(s)
		if err != nil {
			return err
		}
		outcomes = append(outcomes, out)
		if !o.json {
			printOutcome(stdout, out)
		}
	}
	if o.out != "" {
		if err := bench.WriteReport(o.out, o.cfg, args[1:], outcomes); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "report written to %s\n", o.out+"/report.md")
	}
	return nil
}

func printOutcome(w io.Writer, out bench.Outcome) {
	fmt.Fprintf(w, "\n== %s\n", out.Suite.Name)
	_ = bench.WriteTable(w, out, false)
	for _, s := range out.Skipped {
		fmt.Fprintf(w, "skipped: %s\n", s)
	}
}

type options struct {
	cfg        bench.Config
	json, list bool
	out        string
	names      []string
}

// parse reads flags and suite names in any order.
func parse(args []string, all []bench.Suite, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("offheap bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage); fs.PrintDefaults() }
	fs.BoolVar(&o.json, "json", false, "print one JSON object per result line instead of tables")
	fs.BoolVar(&o.cfg.Quick, "quick", false, "small sizes: every suite finishes in well under a minute")
	fs.StringVar(&o.out, "out", "", "write `DIR`/report.md with PNG plots")
	fs.BoolVar(&o.list, "list", false, "list the suites and exit")
	fs.IntVar(&o.cfg.Reps, "reps", 5, "runs per figure; the median is reported")
	fs.DurationVar(&o.cfg.BenchTime, "benchtime", 0, "duration of each Go-benchmark figure (default 300ms, quick 50ms)")
	cases := fs.String("cases", "", "run only the cases whose name matches `REGEXP`")
	maxMiB := fs.Int64("max-mem", bench.PhysicalMemory()/4>>20, "memory in `MiB` any one measurement may use")
	for _, s := range all {
		if s.Flags != nil {
			s.Flags(fs)
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		o.names = append(o.names, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if o.cfg.Reps < 1 || *maxMiB < 1 {
		return o, fmt.Errorf("--reps %d and --max-mem %d must be positive", o.cfg.Reps, *maxMiB)
	}
	o.cfg.MaxBytes = *maxMiB << 20
	if *cases != "" {
		var err error
		if o.cfg.Cases, err = regexp.Compile(*cases); err != nil {
			return o, fmt.Errorf("--cases: %w", err)
		}
	}
	if o.cfg.BenchTime == 0 {
		o.cfg.BenchTime = 300 * time.Millisecond
		if o.cfg.Quick {
			o.cfg.BenchTime = 50 * time.Millisecond
		}
	}
	return o, nil
}
