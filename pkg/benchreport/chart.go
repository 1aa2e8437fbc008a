package benchreport

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/rwxnfs/rwxnfs/pkg/loadgen"
)

// chartWorkloads are the many-in-flight workloads the chart shows (meta
// and lock-null are in the tables only).
var chartWorkloads = []string{"null", "seqwrite", "seqread", "randread", "randwrite",
	"create", "stat", "getattr", "setattr", "rename", "remove", "mkdir", "rmdir", "readdir", "lock"}

var colors = map[string]color.RGBA{
	"rwxnfs":  {31, 119, 180, 255},
	"ganesha": {255, 127, 14, 255},
	"go-nfs":  {44, 160, 44, 255},
	"limit":   {160, 160, 160, 255},
}

// lighter is a server's colour for the libnfs client's bars.
func lighter(c color.RGBA) color.RGBA {
	l := func(v uint8) uint8 { return v + (255-v)/2 }
	return color.RGBA{l(c.R), l(c.G), l(c.B), 255}
}

// series is one bar of each group: a server's figures for rows made by
// key from the group's workload.
type series struct {
	server string
	key    func(string) Key
	col    color.RGBA
}

func serversSeries(servers []string, key func(string) Key) []series {
	var out []series
	for _, sv := range servers {
		out = append(out, series{sv, key, colors[sv]})
	}
	return out
}

var (
	black = color.RGBA{0, 0, 0, 255}
	grid  = color.RGBA{225, 225, 225, 255}
	face  = basicfont.Face7x13
)

type canvas struct{ img *image.RGBA }

func (c canvas) rect(x0, y0, x1, y1 int, col color.Color) {
	if x1 < x0 {
		x0, x1 = x1, x0
	}
	if y1 < y0 {
		y0, y1 = y1, y0
	}
	draw.Draw(c.img, image.Rect(x0, y0, x1, y1), image.NewUniform(col), image.Point{}, draw.Src)
}

func textWidth(s string) int { return font.MeasureString(face, s).Round() }

// text draws s with its baseline at y; align is -1 left, 0 centre, 1 right.
func (c canvas) text(x, y int, s string, align int, col color.Color) {
	w := textWidth(s)
	switch align {
	case 0:
		x -= w / 2
	case 1:
		x -= w
	}
	d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: face, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// logAxis maps values onto [bottom, top] pixels over whole decades.
type logAxis struct {
	lo, hi      float64 // decades
	top, bottom int
}

func newLogAxis(vals []float64, top, bottom int) logAxis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 {
			lo, hi = math.Min(lo, math.Log10(v)), math.Max(hi, math.Log10(v))
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	a := logAxis{lo: math.Floor(lo), hi: math.Ceil(hi), top: top, bottom: bottom}
	if a.hi == a.lo {
		a.hi++
	}
	return a
}

func (a logAxis) y(v float64) int {
	if v <= 0 {
		return a.bottom
	}
	f := (math.Log10(v) - a.lo) / (a.hi - a.lo)
	return a.bottom - int(f*float64(a.bottom-a.top))
}

func decadeLabel(d float64) string {
	v := math.Pow(10, d)
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

// panel draws one grouped bar chart on a log axis: a group per workload,
// a bar per series. bar returns the bar value (and an optional whisker,
// e.g. p99, 0 for none); note returns a second line of the group label.
func (c canvas) panel(x0, y0, x1, y1 int, title string, workloads []string, ss []series, s Set,
	bar func(r loadgen.Result) (v, whisker float64), note func(w string) string) {
	top, bottom := y0+30, y1-44
	left, right := x0+60, x1-10
	var vals []float64
	for _, w := range workloads {
		for _, sr := range ss {
			if r, ok := s.get(sr.server, sr.key(w)); ok {
				v, wh := bar(r)
				vals = append(vals, v)
				if wh > 0 {
					vals = append(vals, wh)
				}
			}
		}
	}
	ax := newLogAxis(vals, top, bottom)
	c.text((left+right)/2, y0+16, title, 0, black)
	for d := ax.lo; d <= ax.hi; d++ {
		y := ax.y(math.Pow(10, d))
		c.rect(left, y, right, y+1, grid)
		c.text(left-6, y+4, decadeLabel(d), 1, black)
	}
	c.rect(left, top, left+1, bottom+1, black)
	c.rect(left, bottom, right, bottom+1, black)
	gw := (right - left) / len(workloads)
	bw := (gw - 16) / len(ss)
	for gi, w := range workloads {
		gx := left + gi*gw + 8
		for si, sr := range ss {
			bx := gx + si*bw
			r, ok := s.get(sr.server, sr.key(w))
			if !ok {
				if s.has(sr.server, sr.key(w)) {
					label := "n/a"
					if strings.HasPrefix(s.problem(sr.server, sr.key(w)), "failed") {
						label = "x"
					}
					c.text(bx+bw/2, bottom-4, label, 0, sr.col)
				}
				continue
			}
			v, wh := bar(r)
			c.rect(bx+1, ax.y(v), bx+bw-1, bottom, sr.col)
			if wh > 0 {
				// A whisker from the bar's top to the p99.
				xm := bx + bw/2
				c.rect(xm, ax.y(wh), xm+1, ax.y(v), black)
				c.rect(bx+2, ax.y(wh), bx+bw-2, ax.y(wh)+1, black)
			}
		}
		c.text(gx+(gw-16)/2, bottom+16, w, 0, black)
		if n := note(w); n != "" {
			c.text(gx+(gw-16)/2, bottom+30, n, 0, black)
		}
	}
}

// WriteChart draws, for every server, throughput and latency by workload
// with many calls in flight, and the time per operation with one call in
// flight (nfsbench's own client and libnfs side by side).
func WriteChart(path string, s Set) error {
	const W, H = 1400, 1400
	c := canvas{image.NewRGBA(image.Rect(0, 0, W, H))}
	c.rect(0, 0, W, H, color.White)
	c.text(W/2, 20, "rwxnfs vs nfs-ganesha vs go-nfs: NFSv3 over loopback, same machine, same run (log scales; medians of the rounds)", 0, black)
	// Legend.
	x := 200
	for _, sv := range Servers {
		c.rect(x, 32, x+14, 44, colors[sv])
		label := sv
		if sv == "limit" {
			label = "limit (direct I/O, RPC echo)"
		}
		c.text(x+20, 43, label, -1, black)
		x += 40 + textWidth(label)
	}
	c.rect(x, 32, x+14, 44, lighter(colors["rwxnfs"]))
	c.text(x+20, 43, "lighter: the same server through libnfs (one call in flight)", -1, black)
	c.panel(0, 52, W, 500, "Many calls in flight, throughput, higher is better: MiB/s (seq), entries/s (readdir), LOCK+UNLOCK pairs/s (lock), else ops/s; below: rwxnfs / ganesha", chartWorkloads, serversSeries(Servers, Many), s,
		func(r loadgen.Result) (float64, float64) { return value(r), 0 },
		func(w string) string {
			if p, ok := s.Ratio(Many(w), "ganesha"); ok {
				return fmt.Sprintf("%.2fx", p.Median)
			}
			return ""
		})
	c.panel(0, 510, W, 950, "Many calls in flight, latency per call, lower is better: bar p50 (rwxnfs's below), whisker p99, microseconds", chartWorkloads, serversSeries(Servers[:3], Many), s,
		func(r loadgen.Result) (float64, float64) { return r.P50us, r.P99us },
		func(w string) string {
			if r, ok := s.get("rwxnfs", Many(w)); ok {
				return strings.ReplaceAll(fmtLat(r.P50us), "µ", "u")
			}
			return ""
		})
	one := serversSeries(Servers[:3], One)
	for _, sr := range serversSeries(Servers[:3], Libnfs) {
		sr.col = lighter(sr.col)
		one = append(one, sr)
	}
	c.panel(0, 960, W, H-8, "One call in flight, time per operation (readdir: per listing), lower is better: bar p50, whisker p99, microseconds; below: ganesha p50 / rwxnfs p50", OneOrder, one, s,
		func(r loadgen.Result) (float64, float64) { return r.P50us, r.P99us },
		func(w string) string {
			if p, ok := s.LatencyRatio(One(w), "ganesha"); ok {
				return fmt.Sprintf("%.2fx", p.Median)
			}
			return ""
		})
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
