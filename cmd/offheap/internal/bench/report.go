// The Markdown report with PNG plots, written by `offheap bench --out DIR`.

package bench

import (
	"cmp"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// WriteReport writes dir/report.md and one PNG per plotted figure for outcomes.
func WriteReport(dir string, cfg Config, args []string, outcomes []Outcome) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# offheap bench report\n\n%s, %s/%s, %d CPUs, %s. Command: `offheap bench %s`. "+
		"Each figure is the median of %d runs; a cell's (Nx) is its ratio to the row's first implementation.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(),
		runtime.Version(), strings.Join(args, " "), max(cfg.Reps, 1))
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

func writeSection(b *strings.Builder, dir string, o Outcome) error {
	fmt.Fprintf(b, "\n## %s\n\n%s\n\n", o.Suite.Name, o.Suite.Doc)
	if err := WriteTable(b, o, true); err != nil {
		return err
	}
	for _, s := range o.Skipped {
		fmt.Fprintf(b, "\nSkipped: %s\n", s)
	}
	for _, g := range groups(o.Results) {
		name := fileName(o.Suite.Name, g.Case, g.Metric)
		if err := plotGroup(filepath.Join(dir, name), g); err != nil {
			return err
		}
		fmt.Fprintf(b, "\n![%s %s %s](%s)\n", o.Suite.Name, g.Case, g.Metric, name)
	}
	for _, c := range seriesCases(o.Series) {
		name := fileName(o.Suite.Name, c, "timeline")
		if err := plotSeries(filepath.Join(dir, name), o.Suite.Name+" "+c, o.Series, c); err != nil {
			return err
		}
		fmt.Fprintf(b, "\n![%s %s over time](%s)\n", o.Suite.Name, c, name)
	}
	return nil
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

// group is the results of one case and metric: a plot.
type group struct {
	Case, Metric string
	ByImpl       map[string][]Result
	Impls        []string
}

func groups(results []Result) []group {
	var out []group
	for _, r := range results {
		i := slices.IndexFunc(out, func(g group) bool { return g.Case == r.Case && g.Metric == r.Metric })
		if i < 0 {
			out = append(out, group{Case: r.Case, Metric: r.Metric, ByImpl: map[string][]Result{}})
			i = len(out) - 1
		}
		g := &out[i]
		if _, ok := g.ByImpl[r.Impl]; !ok {
			g.Impls = append(g.Impls, r.Impl)
		}
		g.ByImpl[r.Impl] = append(g.ByImpl[r.Impl], r)
	}
	return out
}

// plotGroup draws value against n, one line per impl, on log axes where the
// data span more than a factor of 16; with a single n it draws bars.
func plotGroup(path string, g group) error {
	p := plot.New()
	p.Title.Text = g.Case
	p.Y.Label.Text = g.Metric
	var ns, vs []float64
	for _, rs := range g.ByImpl {
		for _, r := range rs {
			ns, vs = append(ns, float64(r.N)), append(vs, r.Value)
		}
	}
	if slices.Min(ns) == slices.Max(ns) {
		return plotBars(p, path, g)
	}
	p.X.Label.Text = "n"
	logAxes(p, ns, vs)
	p.Legend.Top, p.Legend.Left = true, true
	for i, impl := range g.Impls {
		rs := slices.SortedFunc(slices.Values(g.ByImpl[impl]), func(a, b Result) int { return cmp.Compare(a.N, b.N) })
		xy := make(plotter.XYs, len(rs))
		for j, r := range rs {
			xy[j] = plotter.XY{X: float64(r.N), Y: r.Value}
		}
		if err := addLine(p, impl, i, xy); err != nil {
			return err
		}
	}
	return save(p, path)
}

func plotBars(p *plot.Plot, path string, g group) error {
	vals := make(plotter.Values, len(g.Impls))
	for i, impl := range g.Impls {
		vals[i] = g.ByImpl[impl][0].Value
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(30))
	if err != nil {
		return fmt.Errorf("bench: plot %s: %w", path, err)
	}
	bars.Color = plotutil.Color(0)
	p.Add(bars)
	p.NominalX(g.Impls...)
	return save(p, path)
}

func plotSeries(path, title string, all []Series, c string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds"
	p.Legend.Top = true
	i := 0
	for _, s := range all {
		if s.Case != c {
			continue
		}
		p.Y.Label.Text = s.Metric
		xy := make(plotter.XYs, len(s.Points))
		for j, pt := range s.Points {
			xy[j] = plotter.XY{X: pt.X, Y: pt.Y}
		}
		if err := addLine(p, s.Impl, i, xy); err != nil {
			return err
		}
		i++
	}
	return save(p, path)
}

func seriesCases(all []Series) []string {
	var cs []string
	for _, s := range all {
		if !slices.Contains(cs, s.Case) {
			cs = append(cs, s.Case)
		}
	}
	return cs
}

func addLine(p *plot.Plot, name string, i int, xy plotter.XYs) error {
	l, pts, err := plotter.NewLinePoints(xy)
	if err != nil {
		return fmt.Errorf("bench: plot %s: %w", name, err)
	}
	c := plotutil.Color(i)
	l.Color, pts.Color = c, c
	l.Dashes = plotutil.Dashes(i)
	pts.Shape = plotutil.Shape(i)
	p.Add(l, pts)
	p.Legend.Add(name, l, pts)
	return nil
}

// logAxes switches an axis to a log scale when its positive data span more
// than a factor of 16.
func logAxes(p *plot.Plot, xs, ys []float64) {
	if spans(xs) {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	if spans(ys) {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
}

func spans(v []float64) bool {
	lo, hi := slices.Min(v), slices.Max(v)
	return lo > 0 && hi/lo > 16
}

func save(p *plot.Plot, path string) error {
	p.BackgroundColor = color.White
	if err := p.Save(7*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("bench: save plot %s: %w", path, err)
	}
	return nil
}
