// One figure per case: every implementation side by side as bars, each
// labelled with its ratio to the first (offheap's), one panel per metric that
// differs between implementations (metrics of one unit share a panel when
// the case has a single size), and the case's time series, if any, below.

package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// panel is one bar chart: a group of bars per category, a bar per impl.
type panel struct {
	title, unit string
	cats        []string
	impls       []string
	vals        [][]float64 // [impl][category]; NaN where not measured
}

// chart is one panel of a figure as drawn: the plot and its legend, which
// is drawn beside it, not over the data.
type chart struct {
	p      *plot.Plot
	legend plot.Legend
}

// plotCase writes the figure of case c to path. It reports false, writing
// nothing, when no metric of c differs between implementations and c has no
// time series.
func plotCase(path string, o Outcome, c string) (bool, error) {
	var charts []chart
	for _, pn := range panels(o.Results, c) {
		charts = append(charts, pn.chart())
	}
	if ch, ok := seriesChart(o.Series, c); ok {
		charts = append(charts, ch)
	}
	if len(charts) == 0 {
		return false, nil
	}
	return true, save(path, charts)
}

// newChart returns an empty chart titled title.
func newChart(title string) chart {
	ch := chart{p: plot.New(), legend: plot.NewLegend()}
	ch.p.Title.Text = title
	ch.legend.Top, ch.legend.Left = true, true
	return ch
}

// panels arranges the results of case c: with several sizes, a panel per
// metric with a category per size; with one, a panel per unit with a
// category per metric. Metrics constant across impls are left out.
func panels(results []Result, c string) []panel {
	var rs []Result
	var ns []int64
	var metrics, impls []string
	for _, r := range results {
		if r.Case != c {
			continue
		}
		rs = append(rs, r)
		if !slices.Contains(ns, r.N) {
			ns = append(ns, r.N)
		}
		metrics, impls = appendNew(metrics, r.Metric), appendNew(impls, r.Impl)
	}
	metrics = slices.DeleteFunc(metrics, func(m string) bool { return constant(rs, m) })
	var out []panel
	if len(ns) > 1 {
		for _, m := range metrics {
			pn := panel{title: c + ", " + m, unit: m, impls: impls}
			for _, n := range ns {
				pn.cats = append(pn.cats, formatN(n))
			}
			pn.fill(rs, func(r Result) (int, bool) { return slices.Index(ns, r.N), r.Metric == m })
			out = append(out, pn)
		}
		return out
	}
	var units []string
	for _, m := range metrics {
		units = appendNew(units, unitOf(m))
	}
	for _, u := range units {
		ms := slices.DeleteFunc(slices.Clone(metrics), func(m string) bool { return unitOf(m) != u })
		pn := panel{title: c, unit: u, impls: impls}
		for _, m := range ms {
			pn.cats = append(pn.cats, strings.TrimSuffix(strings.TrimSuffix(m, u), "_"))
		}
		pn.fill(rs, func(r Result) (int, bool) { return slices.Index(ms, r.Metric), true })
		out = append(out, pn)
	}
	return out
}

// fill sets vals from rs: at picks the category of a result, if it belongs.
func (pn *panel) fill(rs []Result, at func(Result) (int, bool)) {
	pn.vals = make([][]float64, len(pn.impls))
	for i := range pn.vals {
		pn.vals[i] = make([]float64, len(pn.cats))
		for j := range pn.vals[i] {
			pn.vals[i][j] = math.NaN()
		}
	}
	for _, r := range rs {
		if j, ok := at(r); ok && j >= 0 {
			pn.vals[slices.Index(pn.impls, r.Impl)][j] = r.Value
		}
	}
}

// constant reports whether metric m is the same for every impl at each size,
// within 5%: a figure of it would say nothing the table does not.
func constant(rs []Result, m string) bool {
	lo, hi := map[int64]float64{}, map[int64]float64{}
	for _, r := range rs {
		if r.Metric != m {
			continue
		}
		if _, ok := lo[r.N]; !ok {
			lo[r.N], hi[r.N] = r.Value, r.Value
		}
		lo[r.N], hi[r.N] = min(lo[r.N], r.Value), max(hi[r.N], r.Value)
	}
	for n := range lo {
		if hi[n]-lo[n] > 0.05*max(math.Abs(lo[n]), math.Abs(hi[n])) {
			return false
		}
	}
	return true
}

// unitOf is the unit in a metric's name: all of "ns/op", the part after the
// last underscore of "rss_peak_mib".
func unitOf(m string) string {
	if strings.Contains(m, "/") {
		return m
	}
	if i := strings.LastIndexByte(m, '_'); i >= 0 {
		return m[i+1:]
	}
	return m
}

// formatN writes a size briefly: 16Mi for 16<<20, 10k for 10,000.
func formatN(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGi", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMi", n>>20)
	case n >= 1e6 && n%1e6 == 0:
		return fmt.Sprintf("%dM", n/1e6)
	case n >= 1e3 && n%1e3 == 0:
		return fmt.Sprintf("%dk", n/1e3)
	}
	return fmt.Sprint(n)
}

// chart draws the panel: log values when they span more than 16x.
func (pn panel) chart() chart {
	ch := newChart(pn.title)
	p := ch.p
	p.Y.Label.Text = pn.unit
	var vs []float64
	for _, row := range pn.vals {
		vs = append(vs, slices.DeleteFunc(slices.Clone(row), math.IsNaN)...)
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	logY := lo > 0 && hi/lo > 16
	for i, impl := range pn.impls {
		b := &bars{vals: pn.vals[i], base: pn.vals[0], slot: i, slots: len(pn.impls), color: plotutil.Color(i), first: i == 0}
		p.Add(b)
		ch.legend.Add(impl, b)
	}
	p.NominalX(pn.cats...)
	p.X.Min, p.X.Max = -0.5, float64(len(pn.cats))-0.5
	if logY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = lo/2, hi*3
	} else {
		p.Y.Min, p.Y.Max = min(0, lo), max(hi*1.15, 0)
	}
	return ch
}

// bars draws one impl's bar in every category of a panel, each labelled with
// its ratio to the base (the first impl's) bar of the category.
type bars struct {
	vals, base  []float64
	slot, slots int
	color       color.Color
	first       bool
}

// Plot implements plot.Plotter.
func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	w := 0.8 / float64(b.slots)
	label := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 7), Handler: plot.DefaultTextHandler,
		XAlign: draw.XCenter, YAlign: draw.YBottom}
	for j, v := range b.vals {
		if math.IsNaN(v) {
			continue
		}
		x0 := float64(j) - 0.4 + float64(b.slot)*w
		top := trY(v)
		rect := []vg.Point{{X: trX(x0), Y: trY(p.Y.Min)}, {X: trX(x0), Y: top}, {X: trX(x0 + w), Y: top}, {X: trX(x0 + w), Y: trY(p.Y.Min)}}
		c.FillPolygon(b.color, c.ClipPolygonY(rect))
		if base := b.base[j]; !b.first && base != 0 && !math.IsNaN(base) {
			c.FillText(label, vg.Point{X: trX(x0 + w/2), Y: top + vg.Points(1)}, formatRatio(v/base))
		}
	}
}

// Thumbnail implements plot.Thumbnailer, for the legend.
func (b *bars) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(b.color, []vg.Point{{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y}})
}

// formatRatio writes a ratio with about three significant digits.
func formatRatio(r float64) string {
	switch {
	case r >= 100:
		return fmt.Sprintf("%.0fx", r)
	case r >= 10:
		return fmt.Sprintf("%.1fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

// seriesChart draws the time series of case c, a line per impl, and
// reports whether c has any.
func seriesChart(all []Series, c string) (chart, bool) {
	ch := newChart(c + " over time")
	p := ch.p
	p.X.Label.Text = "seconds"
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
		l, err := plotter.NewLine(xy)
		if err != nil {
			continue // no points: nothing to draw
		}
		l.Color, l.Dashes = plotutil.Color(i), plotutil.Dashes(i)
		p.Add(l)
		ch.legend.Add(s.Impl, l)
		i++
	}
	return ch, i > 0
}

// save writes charts to path as one PNG, stacked, each legend to the right
// of its plot.
func save(path string, charts []chart) error {
	const w, h, legendW = 8 * vg.Inch, 3 * vg.Inch, 1.3 * vg.Inch
	img := vgimg.New(w, h*vg.Length(len(charts)))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	grid := make([][]*plot.Plot, len(charts))
	for i, ch := range charts {
		grid[i] = []*plot.Plot{ch.p}
	}
	tiles := draw.Tiles{Rows: len(charts), Cols: 1, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 2 * vg.Millimeter}
	canvases := plot.Align(grid, tiles, draw.Crop(dc, 0, -legendW, 0, 0))
	for i, ch := range charts {
		c := canvases[i][0]
		ch.p.Draw(c)
		c.Min.X, c.Max.X = c.Max.X+vg.Millimeter, c.Max.X+legendW
		c.Max.Y -= 8 * vg.Millimeter // below the title
		ch.legend.Draw(c)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: save plot: %w", err) // names the path
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: save plot %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench: save plot: %w", err) // names the path
	}
	return nil
}
