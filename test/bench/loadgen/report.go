package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// seriesOrder is how scenarios appear in tables and on the plot.
var seriesOrder = []struct{ scenario, label string }{
	{"baseline-b", "baseline (b): HTTP only"},
	{"baseline-a", "baseline (a): one Redis GET"},
	{"introspect", "introspection"},
	{"refresh", "refresh grant"},
	{"flow", "whole flows (per request)"},
}

func (r *report) markdown() string {
	var b strings.Builder
	n := r.Workers[len(r.Workers)-1]
	fmt.Fprintf(&b, "Run of %s (%s): %s; load average %s at the end.\n\n", r.Started, r.Elapsed, r.Machine, r.LoadAverage)
	fmt.Fprintf(&b, "At %d workers (ratios are our requests per second over the baseline's):\n\n", n)
	b.WriteString("| scenario | req/s | vs (a) | vs (b) | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range seriesOrder {
		p := r.find(s.scenario, n)
		va, vb := "", ""
		if v, ok := r.Ratios[s.scenario]; ok {
			va = fmt.Sprintf("%.2f", v)
		}
		if v, ok := r.RatiosB[s.scenario]; ok {
			vb = fmt.Sprintf("%.2f", v)
		}
		if s.scenario == "baseline-a" {
			va = "1"
		}
		if s.scenario == "baseline-b" {
			vb = "1"
		}
		fmt.Fprintf(&b, "| %s | %.0f | %s | %s | %.2f | %.2f | %.2f | %d |\n", s.label, p.All.RPS, va, vb, p.All.P50, p.All.P99, p.All.P999, p.Errors)
	}
	if f := r.find("flow", n); f.Flows > 0 {
		fmt.Fprintf(&b, "\nWhole flows: %.0f logins/s, five requests each. Per request at %d workers:\n\n", f.Flows, n)
		b.WriteString("| request | req/s | p50 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|---:|\n")
		for _, k := range []kind{kRegister, kAuthorize, kConsent, kCallback, kTokenCode} {
			s := f.Kinds[kindNames[k]]
			fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %.2f |\n", kindNames[k], s.RPS, s.P50, s.P99, s.P999)
		}
	}
	if len(r.Accounting) > 0 {
		b.WriteString("\nRedis per request, counted one request at a time (round trips and commands as the server counts what it sends; the last column is every command Redis ran, inside scripts too):\n\n")
		b.WriteString("| request | round trips | commands sent | commands run by Redis |\n|---|---:|---:|---:|\n")
		for _, a := range r.Accounting {
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %d |\n", a.Kind, a.RoundTrips, a.Commands, a.RedisCommands)
		}
	}
	b.WriteString("\nEvery phase (cores: CPU each process used, of the machine's " + fmt.Sprint(numCPU()) + "; round trips per request under load, from the server's counters):\n\n")
	b.WriteString("| scenario | workers | req/s | p50 ms | p99 ms | p99.9 ms | errors | cores: server / redis / loadgen / baseline | Redis round trips/req | Redis cmds run/req |\n|---|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, w := range r.Workers {
		for _, s := range seriesOrder {
			p := r.find(s.scenario, w)
			cores := fmt.Sprintf("%s / %.2f / %.2f / %s", coreStr(p.Cores, "server"), p.Cores["redis"], p.Cores["loadgen"], coreStr(p.Cores, "baseline"))
			rt := "-"
			if p.RoundTrips > 0 {
				rt = fmt.Sprintf("%.2f", p.RoundTrips)
			}
			fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %.2f | %d | %s | %s | %.2f |\n", s.scenario, w, p.All.RPS, p.All.P50, p.All.P99, p.All.P999, p.Errors, cores, rt, p.RedisCommands)
		}
	}
	fmt.Fprintf(&b, "\nServer peak RSS (VmHWM): %.1f MiB; baseline process: %.1f MiB. Errors: %d (setup logins: %d).\n",
		r.ServerPeakRSSMiB, r.BaselinePeakRSSMiB, r.Errors, r.SetupErrors)
	return b.String()
}

func coreStr(m map[string]float64, k string) string {
	v, ok := m[k]
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f", v)
}

// plot draws throughput and p99 latency against concurrency with gnuplot.
func (r *report) plot(o *options) error {
	gp, err := exec.LookPath("gnuplot")
	if err != nil {
		return errNoGnuplot
	}
	var dat strings.Builder
	dat.WriteString("# workers")
	for _, s := range seriesOrder {
		dat.WriteString(" " + s.scenario + "_rps")
	}
	for _, s := range seriesOrder {
		dat.WriteString(" " + s.scenario + "_p99ms")
	}
	dat.WriteString("\n")
	for _, w := range r.Workers {
		fmt.Fprintf(&dat, "%d", w)
		for _, s := range seriesOrder {
			fmt.Fprintf(&dat, " %.1f", r.find(s.scenario, w).All.RPS)
		}
		for _, s := range seriesOrder {
			fmt.Fprintf(&dat, " %.3f", r.find(s.scenario, w).All.P99)
		}
		dat.WriteString("\n")
	}
	datPath := filepath.Join(o.out, "sweep.dat")
	if err := os.WriteFile(datPath, []byte(dat.String()), 0o644); err != nil {
		return err
	}
	var tics []string
	for _, w := range r.Workers {
		tics = append(tics, fmt.Sprint(w))
	}
	k := len(seriesOrder)
	var rps, p99 []string
	colors := []string{"#7b3294", "#1b9e77", "#2c7fb8", "#e66101", "#d7191c"}
	for i, s := range seriesOrder {
		style := fmt.Sprintf("with linespoints lw 2 pt 7 lc rgb '%s'", colors[i])
		if strings.HasPrefix(s.scenario, "baseline") {
			style = fmt.Sprintf("with linespoints lw 2 dt 2 pt 6 lc rgb '%s'", colors[i])
		}
		rps = append(rps, fmt.Sprintf("'%s' using 1:%d title '%s' %s", datPath, i+2, s.label, style))
		p99 = append(p99, fmt.Sprintf("'%s' using 1:%d notitle %s", datPath, i+2+k, style))
	}
	script := fmt.Sprintf(`set terminal pngcairo size 1400,560 font "sans,11"
set output '%s'
set multiplot layout 1,2 title "mcpauth authorization server vs baselines, same machine and run: %s"
set logscale x 2
set xrange [%g:%g]
set xtics (%s)
set xlabel "concurrent workers"
set grid
set key top left
set ylabel "requests per second"
set yrange [0:*]
set offsets 0, 0, graph 0.45, 0
set title "Throughput"
plot %s
set offsets 0, 0, 0, 0
set logscale y 10
set yrange [*:*]
set ylabel "p99 latency (ms)"
set title "p99 latency"
plot %s
unset multiplot
`, o.plot, strings.ReplaceAll(r.Machine, "'", ""), float64(r.Workers[0])*0.8, float64(r.Workers[len(r.Workers)-1])*1.25, strings.Join(tics, ", "), strings.Join(rps, ", "), strings.Join(p99, ", "))
	scriptPath := filepath.Join(o.out, "plot.gp")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(gp, scriptPath).CombinedOutput(); err != nil {
		return fmt.Errorf("gnuplot: %v: %s", err, out)
	}
	return nil
}
