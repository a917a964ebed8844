package main

import (
	"context"
	"fmt"
	"strings"
)

// compare measures two server binaries against each other, for before/after figures
// of an optimisation: both run at once on the same Redis (under different key
// prefixes), and each scenario alternates between them, A B B A ..., so that whatever
// else loads the machine weighs on both alike. It prints B's throughput over A's.
func (b *bench) compare(ctx context.Context, ts []*target) error {
	n := b.o.workers[len(b.o.workers)-1]
	fmt.Printf("compare: A=%s B=%s; %d workers; %d rounds of %s per binary and scenario\n",
		ts[0].name, ts[1].name, n, b.o.rounds, b.o.headline)
	for _, sc := range b.o.scenarios {
		if strings.HasPrefix(sc, "baseline") {
			continue
		}
		var rps, cores, redis, p99 [2]float64
		for r := range b.o.rounds {
			order := []int{0, 1}
			if r%2 == 1 {
				order = []int{1, 0}
			}
			for _, i := range order {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.t = ts[i]
				res := b.phase(ctx, sc, n, b.o.warmup, b.o.headline)
				fmt.Printf("  %-10s round %d %c: %s  errors %d  server %.2f cores  %.2f round trips/req\n",
					sc, r+1, "AB"[i], res.All, res.Errors, res.Cores["server"], res.RoundTrips)
				rps[i] += res.All.RPS / float64(b.o.rounds)
				cores[i] += res.Cores["server"] / float64(b.o.rounds)
				redis[i] += res.Cores["redis"] / float64(b.o.rounds)
				p99[i] += res.All.P99 / float64(b.o.rounds)
			}
		}
		fmt.Printf("%s: A %.0f req/s (p99 %.2f ms; CPU/req: server %.0f µs, Redis %.0f µs)  B %.0f req/s (p99 %.2f ms; CPU/req: server %.0f µs, Redis %.0f µs)  B/A %.3f\n",
			sc, rps[0], p99[0], 1e6*cores[0]/rps[0], 1e6*redis[0]/rps[0], rps[1], p99[1], 1e6*cores[1]/rps[1], 1e6*redis[1]/rps[1], rps[1]/rps[0])
	}
	fmt.Printf("peak RSS: A %.1f MiB  B %.1f MiB\n", float64(memKiB(ts[0].proc.pid(), "VmHWM"))/1024, float64(memKiB(ts[1].proc.pid(), "VmHWM"))/1024)
	return nil
}
