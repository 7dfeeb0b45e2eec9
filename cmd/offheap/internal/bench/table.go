// Tables: one row per case, size and metric; one column per implementation,
// each cell with its ratio to the row's first implementation.

package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Row names a row of the tables: a case, its size n and a metric.
type Row struct {
	Case   string
	N      int64
	Metric string
}

// Pivot arranges results as rows (case, n, metric) by impl, keeping
// first-seen order: cell[row][impl] is a result's value.
func Pivot(results []Result) (rows []Row, impls []string, cell map[Row]map[string]float64) {
	cell = map[Row]map[string]float64{}
	for _, r := range results {
		k := Row{r.Case, r.N, r.Metric}
		if cell[k] == nil {
			cell[k] = map[string]float64{}
			rows = append(rows, k)
		}
		cell[k][r.Impl] = r.Value
		if !slices.Contains(impls, r.Impl) {
			impls = append(impls, r.Impl)
		}
	}
	return rows, impls, cell
}

// WriteTable writes o's results as an aligned text table, or as a Markdown
// table when markdown is true.
func WriteTable(w io.Writer, o Outcome, markdown bool) error {
	rows, impls, cell := Pivot(o.Results)
	head := append([]string{"case", "n", "metric"}, impls...)
	lines := [][]string{head}
	for _, k := range rows {
		line := []string{k.Case, strconv.FormatInt(k.N, 10), k.Metric}
		base, hasBase := firstValue(cell[k], impls)
		for _, impl := range impls {
			v, ok := cell[k][impl]
			line = append(line, formatCell(v, ok, base, hasBase))
		}
		lines = append(lines, line)
	}
	if markdown {
		return writeMarkdown(w, lines)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, l := range lines {
		fmt.Fprintln(tw, strings.Join(l, "\t")+"\t")
	}
	return tw.Flush()
}

func writeMarkdown(w io.Writer, lines [][]string) error {
	var b strings.Builder
	for i, l := range lines {
		b.WriteString("| " + strings.Join(l, " | ") + " |\n")
		if i == 0 {
			b.WriteString(strings.Repeat("|---", len(l)) + "|\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func firstValue(row map[string]float64, impls []string) (float64, bool) {
	for _, impl := range impls {
		if v, ok := row[impl]; ok {
			return v, true
		}
	}
	return 0, false
}

func formatCell(v float64, ok bool, base float64, hasBase bool) string {
	if !ok {
		return "-"
	}
	s := FormatValue(v)
	if hasBase && base != 0 && v != base {
		s += fmt.Sprintf(" (%.2fx)", v/base)
	}
	return s
}

// FormatValue prints v with about four significant digits and no exponent
// below a billion.
func FormatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a == 0:
		return "0"
	case a >= 1e9:
		return strconv.FormatFloat(v, 'g', 4, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}
