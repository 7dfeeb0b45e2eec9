// The Markdown report written by `offheap bench --out DIR`: the run (date,
// machine, command), a headline table of each seed's published figure beside
// this run's, then per suite its claim and answer, what it measures, its full
// table and one figure per case (plot.go).

package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// WriteReport writes dir/report.md and one PNG per plotted case for
// outcomes, from a run of `offheap bench args...` with cfg.
func WriteReport(dir string, cfg Config, args []string, outcomes []Outcome) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	var b strings.Builder
	writeRun(&b, cfg, args)
	WriteHeadline(&b, outcomes)
	for _, o := range outcomes {
		if err := writeSection(&b, dir, o); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	return nil
}

// writeRun says when, where and how the figures were measured.
func writeRun(b *strings.Builder, cfg Config, args []string) {
	cpu := ""
	if m := cpuModel(); m != "" {
		cpu = " (" + m + ")"
	}
	fmt.Fprintf(b, "# offheap bench report\n\n"+
		"Run %s on %s/%s, %d CPUs%s, %.1f GiB of RAM, %s.  \nCommand: `offheap bench %s`.  \n"+
		"Each figure is the median of %d runs, taken in rounds over the suite's tasks; a cell's (Nx) is its ratio to the row's first implementation, offheap's.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), cpu,
		float64(PhysicalMemory())/(1<<30), runtime.Version(), strings.Join(args, " "), max(cfg.Reps, 1))
}

// WriteHeadline writes a Markdown table with one row per suite that has a
// Claim: the seed, its published figure, and this run's answer.
func WriteHeadline(w io.Writer, outcomes []Outcome) {
	var rows []string
	for _, o := range outcomes {
		if c := o.Suite.Claim; c != nil {
			rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", c.Seed, c.Published, o.Suite.Name, answer(o)))
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(w, "\n## Headline\n\n| seed | published | suite | this run |\n|---|---|---|---|\n%s\n", strings.Join(rows, "\n"))
}

// answer is the suite's answer to its claim, or says why there is none.
func answer(o Outcome) string {
	if a := o.Suite.Claim.Answer(o); a != "" {
		return a
	}
	return "not measured in this run"
}

func writeSection(b *strings.Builder, dir string, o Outcome) error {
	fmt.Fprintf(b, "\n## %s\n\n", o.Suite.Name)
	if c := o.Suite.Claim; c != nil {
		fmt.Fprintf(b, "**%s published:** %s  \n**This run:** %s\n\n", c.Seed, c.Published, answer(o))
	}
	fmt.Fprintf(b, "%s\n\n", o.Suite.Doc)
	if err := WriteTable(b, o, true); err != nil {
		return err
	}
	for _, s := range o.Skipped {
		fmt.Fprintf(b, "\nSkipped: %s\n", s)
	}
	for _, c := range cases(o) {
		name := fileName(o.Suite.Name, c)
		ok, err := plotCase(filepath.Join(dir, name), o, c)
		if err != nil {
			return err
		}
		if ok {
			fmt.Fprintf(b, "\n![%s: %s](%s)\n", o.Suite.Name, c, name)
		}
	}
	return nil
}

// cases returns the cases of o's results, in the order first measured.
func cases(o Outcome) []string {
	var cs []string
	for _, r := range o.Results {
		cs = appendNew(cs, r.Case)
	}
	return cs
}

func appendNew(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func fileName(parts ...string) string {
	s := strings.Join(parts, "-")
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, s)
	return s + ".png"
}
