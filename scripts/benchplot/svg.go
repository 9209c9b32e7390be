package main

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// panel is one backend of the scale picture: the sub-benchmarks
// bench/param=N, their cold apply per object and peak RSS, and the
// baseline measured beside them (total ms, divided by N here).
type panel struct {
	title, bench, param, object string
	baseUnit, baseLabel         string
}

var panels = []panel{
	{title: "PostgreSQL", bench: "BenchmarkPostgres", param: "dbs", object: "database + its owner role", baseUnit: "psql-ms", baseLabel: "psql -f"},
	{title: "RabbitMQ", bench: "BenchmarkRabbitMQ", param: "objects", object: "exchange, queue or binding"},
	{title: "MinIO", bench: "BenchmarkBuckets", param: "buckets", object: "bucket", baseUnit: "go-ms", baseLabel: "Go SigV4 client"},
}

type point struct {
	n        float64
	per, rss stat
	base     float64 // baseline ms per object; 0 when none
}

func (p panel) points(results []result) []point {
	var out []point
	prefix := p.bench + "/" + p.param + "="
	for _, r := range results {
		v, ok := strings.CutPrefix(r.name, prefix)
		if !ok {
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n <= 0 {
			continue
		}
		per, ok1 := r.stat("ms-per-object")
		rss, ok2 := r.stat("peak-rss-MiB")
		if !ok1 || !ok2 {
			continue
		}
		pt := point{n: n, per: per, rss: rss}
		if b, ok := r.stat(p.baseUnit); ok && p.baseUnit != "" {
			pt.base = b.med / n
		}
		out = append(out, pt)
	}
	return out
}

const (
	svgW, svgH     = 960, 620
	colW, rowH     = 320, 270
	padL, padR     = 58, 18
	padT, padB     = 46, 40
	topY           = 50
	ours, baseline = "#1f5fa8", "#8a8a8a"
)

// picture draws, per backend, the cold apply's cost per object (median,
// with min-max whiskers, beside the baseline's) and the binary's peak RSS
// (median, whiskers to min and max) against the size, on a log scale.
func picture(results []result, date string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&b, `<text x="12" y="20" font-size="14" font-weight="bold">%s</text>`+"\n",
		html.EscapeString("How cost grows with size: cold apply per object (top) and peak RSS of the binary (bottom), make bench "+date))
	fmt.Fprintf(&b, `<text x="12" y="36" fill="#444">%s</text>`+"\n",
		html.EscapeString("blue: bootstrap (median, bars: min to max of the runs); grey dashed: the baseline of the same run; flat or falling per-object cost means linear or better"))
	for i, p := range panels {
		pts := p.points(results)
		x0 := float64(i * colW)
		chart(&b, x0, topY, p.title+": ms per "+p.object, pts, func(q point) (stat, float64) { return q.per, q.base }, p.baseLabel, 0)
		chart(&b, x0, topY+rowH+30, p.title+": peak RSS, MiB", pts, func(q point) (stat, float64) { return q.rss, 0 }, "", 32)
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// chart draws one panel at (x0, y0). value gives each point's measured
// stat and baseline (0: none); ref, when not 0, is drawn as a red
// reference line (the platform's RSS target).
func chart(b *strings.Builder, x0, y0 float64, title string, pts []point, value func(point) (stat, float64), baseLabel string, ref float64) {
	left, top := x0+padL, y0+padT
	w, h := float64(colW-padL-padR), float64(rowH-padT-padB)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-weight="bold">%s</text>`+"\n", x0+12, y0+24, html.EscapeString(title))
	if len(pts) == 0 {
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#a00">no data</text>`+"\n", left+10, top+h/2)
		return
	}
	lo, hi := pts[0].n, pts[0].n
	ymax := ref
	for _, p := range pts {
		s, base := value(p)
		lo, hi = math.Min(lo, p.n), math.Max(hi, p.n)
		ymax = math.Max(ymax, math.Max(s.max, base))
	}
	ymax = niceCeil(ymax * 1.1)
	xOf := func(n float64) float64 {
		if hi == lo {
			return left + w/2
		}
		return left + (math.Log10(n)-math.Log10(lo))/(math.Log10(hi)-math.Log10(lo))*w
	}
	yOf := func(v float64) float64 { return top + h - v/ymax*h }
	axes(b, left, top, w, h, ymax, pts, xOf)
	if ref > 0 {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#c33" stroke-dasharray="2,3"/>`+"\n", left, yOf(ref), left+w, yOf(ref))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#c33" text-anchor="end">%s MiB (platform target)</text>`+"\n", left+w, yOf(ref)-3, num(ref))
	}
	var line, baseLine []string
	for _, p := range pts {
		s, base := value(p)
		x := xOf(p.n)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x, yOf(s.min), x, yOf(s.max), ours)
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x, yOf(s.med), ours)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="%s">%s</text>`+"\n", x+5, yOf(s.med)-5, ours, num(s.med))
		line = append(line, fmt.Sprintf("%.1f,%.1f", x, yOf(s.med)))
		if base > 0 {
			baseLine = append(baseLine, fmt.Sprintf("%.1f,%.1f", x, yOf(base)))
		}
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.Join(line, " "), ours)
	if len(baseLine) > 1 {
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-dasharray="5,3"/>`+"\n", strings.Join(baseLine, " "), baseline)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="%s" text-anchor="end">%s</text>`+"\n", left+w, top+10, baseline, html.EscapeString(baseLabel))
	}
}

// axes draws the frame, y gridlines at quarters of ymax and an x tick at
// each size.
func axes(b *strings.Builder, left, top, w, h, ymax float64, pts []point, xOf func(float64) float64) {
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#bbb"/>`+"\n", left, top, w, h)
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		y := top + h - h*float64(i)/4
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, y, left+w, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">%s</text>`+"\n", left-4, y+4, num(v))
	}
	for _, p := range pts {
		x := xOf(p.n)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">%s</text>`+"\n", x, top+h+15, strconv.FormatFloat(p.n, 'f', -1, 64))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555">size (log scale)</text>`+"\n", left+w/2, top+h+30)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
