// Command loadgen measures the authorization server against two baselines on the same
// machine, in the same run, under the same generator and concurrency, so that the
// ratios hold however noisy the machine is. `make bench` runs it.
//
// It starts a redis-server, the real server binary (cmd/authserver) as a separate
// process with a configuration file and the Redis store, and a baseline process (see
// baseline.go), and serves a fast upstream identity provider itself (see upstream.go).
// Then, at each concurrency of -workers, it drives:
//
//	baseline-b  the HTTP ceiling: a handler that reads the request and answers, no Redis
//	baseline-a  the same handler with one Redis GET: the ceiling for introspection
//	introspect  RFC 7662 introspection of access tokens by a pre-registered MCP server
//	refresh     the refresh_token grant of dynamically registered public clients
//	flow        whole logins: register, authorize, consent, callback, code exchange
//
// and reports throughput, p50/p99/p99.9 latency, errors, CPU used by each process,
// Redis round trips per request (counted by the server, see authserver/app) and the
// server's peak RSS (VmHWM). It ends with one line:
//
//	bench: introspect=R refresh=R flow=R errors=N rss_mib=M
//
// where each R is our throughput over baseline (a)'s at the highest concurrency, flows
// counted by every request they make. -compare measures two server binaries against
// each other instead (compare.go). docs/performance.md describes the method.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mcpauth/mcpauth/internal/testutil/signingkeys"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		if err := runBaseline(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen baseline:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func numCPU() int { return runtime.NumCPU() }

type options struct {
	authserver string
	out        string
	plot       string
	workers    []int
	warmup     time.Duration
	duration   time.Duration
	headline   time.Duration
	scenarios  []string
	compare    string
	rounds     int
	cpuProfile string
	replot     string
}

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	o := &options{}
	fs.StringVar(&o.authserver, "authserver", "bin/authserver", "the server binary (go build ./cmd/authserver)")
	fs.StringVar(&o.out, "out", "bin/bench", "directory for results.json, results.md, the plot data and process logs")
	fs.StringVar(&o.plot, "plot", "", "write the PNG plot here (needs gnuplot); empty: OUT/performance.png")
	workers := fs.String("workers", "1,4,16,64", "concurrencies to measure; the ratios are taken at the last")
	fs.DurationVar(&o.warmup, "warmup", time.Second, "unrecorded warm-up at the start of each phase")
	fs.DurationVar(&o.duration, "duration", 4*time.Second, "measured time of each phase")
	fs.DurationVar(&o.headline, "headline-duration", 8*time.Second, "measured time of each phase at the last concurrency")
	fs.StringVar(&o.compare, "compare", "", "a second server binary: alternate phases between the two and report B/A (for before/after measurements)")
	fs.IntVar(&o.rounds, "rounds", 3, "with -compare, phases per binary and scenario")
	fs.StringVar(&o.replot, "replot", "", "redraw the plot and results.md from this results.json, without running")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the generator's own CPU profile here (to keep it cheap)")
	only := fs.String("scenarios", strings.Join(scenarios, ","), "scenarios to run (a subset is for profiling; the summary needs all)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*only, ",") {
		if !slices.Contains(scenarios, s) {
			return nil, fmt.Errorf("-scenarios: unknown %q (have %s)", s, strings.Join(scenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	for _, s := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-workers: %q is not a positive number", s)
		}
		o.workers = append(o.workers, n)
	}
	if o.plot == "" {
		o.plot = filepath.Join(o.out, "performance.png")
	}
	return o, nil
}

// scenario names, in the order each concurrency runs them.
var scenarios = []string{"baseline-b", "baseline-a", "introspect", "refresh", "flow"}

// phaseResult is one scenario at one concurrency.
type phaseResult struct {
	Scenario string             `json:"scenario"`
	Workers  int                `json:"workers"`
	Seconds  float64            `json:"seconds"`
	All      summary            `json:"all"`
	Kinds    map[string]summary `json:"kinds"`
	Flows    float64            `json:"flows_per_second,omitempty"`
	Errors   int                `json:"errors"`
	FirstErr string             `json:"first_error,omitempty"`
	// Cores is the CPU each process used during the phase, in cores.
	Cores map[string]float64 `json:"cores"`
	// RedisCommands is every command Redis ran per request, inside scripts too.
	RedisCommands float64 `json:"redis_commands_per_request"`
	// RoundTrips and ServerCommands are what our server sent Redis per request (its
	// own count); absent for baselines.
	RoundTrips     float64 `json:"round_trips_per_request,omitempty"`
	ServerCommands float64 `json:"server_commands_per_request,omitempty"`
}

type bench struct {
	o        *options
	t        *target // the server under load
	redis    string
	procs    map[string]int // name -> pid of the other processes, for CPU accounting
	baseA    string
	baseB    string
	setupErr int
}

// target is one running server binary and the logins made on it.
type target struct {
	name     string
	proc     *proc
	g        *gen
	grants   []grant // one per worker of the highest concurrency, for refresh
	tokens   []string
	counters bool // the server exports its Redis counters
}

func run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if o.replot != "" {
		b, err := os.ReadFile(o.replot)
		if err != nil {
			return err
		}
		var rep report
		if err := json.Unmarshal(b, &rep); err != nil {
			return err
		}
		return rep.write(o)
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	dir, err := os.MkdirTemp("", "mcpauth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	started := time.Now()
	fmt.Printf("loadgen: %s; GOMAXPROCS %d; load average %s at start\n", machine(), runtime.GOMAXPROCS(0), loadAverage())

	redis, redisAddr, err := startRedis(dir)
	if err != nil {
		return err
	}
	defer redis.stop()
	// The record baseline (a) reads: the size of a real access-token record.
	rec := `{"grant_id":"0123456789abcdef0123456789abcdef","client_id":"mcpc_AAAAAAAAAAAAAAAAAAAAAA","user_id":"u12345","scope":"mcp","resource":["https://mcp.bench.example/"],"issued_at":"2026-01-01T00:00:00Z","expires_at":"2026-01-01T00:15:00Z"}`
	if r := redisCmd(redisAddr, "SET", baselineKey, rec); r != "+OK" {
		return fmt.Errorf("redis SET: %q", r)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	addrA, _ := freeAddr()
	addrB, _ := freeAddr()
	base, err := start(dir, "baseline", self, nil, "baseline", "-redis", redisAddr, "-listen-a", addrA, "-listen-b", addrB)
	if err != nil {
		return err
	}
	defer base.stop()
	if err := base.waitHTTP("http://"+addrB+"/", 10*time.Second); err != nil {
		return err
	}

	upstreamURL, err := serveUpstream()
	if err != nil {
		return err
	}
	b := &bench{
		o: o, redis: redisAddr,
		procs: map[string]int{"redis": redis.pid(), "baseline": base.pid(), "loadgen": os.Getpid()},
		baseA: "http://" + addrA, baseB: "http://" + addrB,
	}
	bins := []string{o.authserver}
	if o.compare != "" {
		bins = append(bins, o.compare)
	}
	var targets []*target
	for i, bin := range bins {
		t, err := startTarget(dir, fmt.Sprintf("authserver%d", i), bin, upstreamURL, redisAddr, fmt.Sprintf("bench%d", i))
		if err != nil {
			return err
		}
		defer t.proc.stop()
		b.t = t
		if err := b.setup(ctx); err != nil {
			return err
		}
		targets = append(targets, t)
	}
	if o.compare != "" {
		return b.compare(ctx, targets)
	}
	srv := b.t.proc
	accounting, err := b.account(ctx)
	if err != nil {
		return err
	}

	var results []phaseResult
	for i, n := range o.workers {
		d := o.duration
		if i == len(o.workers)-1 {
			d = o.headline
		}
		for _, sc := range o.scenarios {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r := b.phase(ctx, sc, n, o.warmup, d)
			results = append(results, r)
			printPhase(r)
		}
	}
	rssKiB := memKiB(srv.pid(), "VmHWM")
	baseKiB := memKiB(base.pid(), "VmHWM")
	select {
	case <-srv.done:
		return fmt.Errorf("the server exited during the run:\n%s", srv.tail())
	default:
	}
	rep := report{
		Machine: machine(), LoadAverage: loadAverage(), Started: started.UTC().Format(time.RFC3339),
		Elapsed: time.Since(started).Round(time.Second).String(), Workers: o.workers,
		Phases: results, Accounting: accounting, ServerPeakRSSMiB: float64(rssKiB) / 1024,
		BaselinePeakRSSMiB: float64(baseKiB) / 1024, SetupErrors: b.setupErr,
	}
	rep.ratios()
	if err := rep.write(o); err != nil {
		return err
	}
	rep.print()
	fmt.Printf("bench: introspect=%.2f refresh=%.2f flow=%.2f errors=%d rss_mib=%.0f\n",
		rep.Ratios["introspect"], rep.Ratios["refresh"], rep.Ratios["flow"], rep.Errors, rep.ServerPeakRSSMiB)
	return nil
}

// startTarget runs a server binary with its own key prefix on the shared Redis.
func startTarget(dir, name, bin, upstreamURL, redisAddr, prefix string) (*target, error) {
	srvAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	introspectSecret := randomB64(32)
	cfgPath, env, err := writeServerConfig(dir, name, srvAddr, upstreamURL, redisAddr, prefix, introspectSecret)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	p, err := start(dir, name, abs, env, "--config", cfgPath, "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	server := "http://" + srvAddr
	if err := p.waitHTTP(server+"/readyz", 20*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return &target{name: bin, proc: p, g: newGen(server, upstreamURL, "mcp-server", introspectSecret)}, nil
}

// writeServerConfig writes the server's configuration file: the Redis store, the fast
// upstream as a plain OAuth 2.0 provider, dynamic registration on (the default), opaque
// access tokens (what introspection is for; the baselines are sized for their
// records), and one pre-registered confidential client, the MCP server that
// introspects. The server also gets a keys file of its own (not required with opaque
// tokens; it keeps the configuration valid if the format is switched to jwt).
func writeServerConfig(dir, name, addr, upstreamURL, redisAddr, prefix, introspectSecret string) (string, []string, error) {
	sum := sha256.Sum256([]byte(introspectSecret))
	keysDir := filepath.Join(dir, name+"-keys")
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return "", nil, err
	}
	keysFile, err := signingkeys.WriteNew(keysDir)
	if err != nil {
		return "", nil, err
	}
	cfg := fmt.Sprintf(`issuer: http://%[1]s
listenAddress: %[1]s
scopesSupported: [mcp]
defaultScopes: [mcp]
upstream:
  type: oauth2
  clientID: bench
  authorizationURL: %[2]s/authorize
  tokenURL: %[2]s/token
  userInfoURL: %[2]s/userinfo
clientIDMetadataDocuments:
  enabled: false
tokens:
  accessTokenFormat: opaque
store:
  type: redis
  redis:
    addresses: [%[3]s]
    keyPrefix: %[5]s
clients:
  - clientID: mcp-server
    clientName: Bench MCP server
    secretHash: sha256:%[4]s
    tokenEndpointAuthMethod: client_secret_basic
    redirectURIs: [http://127.0.0.1/unused]
secrets:
  signingKeysFile: %[6]s
`, addr, upstreamURL, redisAddr, hex.EncodeToString(sum[:]), prefix, keysFile)
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", nil, err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	env := []string{
		"MCPAUTH_UPSTREAM_CLIENT_SECRET=bench-upstream-secret",
		"MCPAUTH_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(key),
	}
	return path, env, nil
}

// setup logs in one client per worker of the highest concurrency: their refresh
// tokens feed the refresh phases, their access tokens (and more) the introspection.
func (b *bench) setup(ctx context.Context) error {
	n := slices.Max(b.o.workers)
	rec := &recorder{window: &window{}} // records nothing: the window is empty
	b.t.grants = make([]grant, n)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gr, err := b.t.g.newWorker(i).flow(rec, nil)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			b.t.grants[i] = gr
			b.t.tokens = append(b.t.tokens, gr.access)
		}()
	}
	wg.Wait()
	b.setupErr = rec.errs
	if firstErr != nil {
		return fmt.Errorf("setup logins: %w", firstErr)
	}
	_, _, b.t.counters = b.t.g.serverCounters(ctx)
	return nil
}

// accounting is the Redis cost of each kind of request, measured one request at a
// time with nothing else running: the server's own count of round trips and commands
// before and after.
type accounting struct {
	Kind       string  `json:"kind"`
	RoundTrips float64 `json:"round_trips"`
	Commands   float64 `json:"commands"`
	// RedisCommands includes those run inside scripts (INFO total_commands_processed,
	// less the INFO call itself).
	RedisCommands int64 `json:"redis_commands"`
}

func (b *bench) account(ctx context.Context) ([]accounting, error) {
	if !b.t.counters {
		fmt.Println("loadgen: the server does not export mcpauth_redis_round_trips_total; round trips not counted")
		return nil, nil
	}
	const rounds = 3
	sums := map[kind]*accounting{}
	var order []kind
	var lastRT, lastCmd float64
	var lastRedis int64
	mark := func() {
		lastRT, lastCmd, _ = b.t.g.serverCounters(ctx)
		lastRedis = redisStats(b.redis)
	}
	after := func(k kind) {
		rt, cmd, _ := b.t.g.serverCounters(ctx)
		redis := redisStats(b.redis) - lastRedis - 1 // the INFO that read it
		a := sums[k]
		if a == nil {
			a = &accounting{Kind: kindNames[k]}
			sums[k] = a
			order = append(order, k)
		}
		a.RoundTrips += (rt - lastRT) / rounds
		a.Commands += (cmd - lastCmd) / rounds
		a.RedisCommands += redis
		mark()
	}
	rec := &recorder{window: &window{}}
	w := b.t.g.newWorker(-1)
	for range rounds {
		mark()
		gr, err := w.flow(rec, after)
		if err != nil {
			return nil, err
		}
		mark()
		if err := w.refresh(rec, &gr); err != nil {
			return nil, err
		}
		after(kTokenRefresh)
		if err := w.introspect(rec, b.t.g.server, gr.access, kIntrospect); err != nil {
			return nil, err
		}
		after(kIntrospect)
	}
	var out []accounting
	for _, k := range order {
		a := *sums[k]
		a.RedisCommands /= rounds
		out = append(out, a)
	}
	return out, nil
}

// phase runs one scenario with n workers: warm-up, then the measured window.
func (b *bench) phase(ctx context.Context, sc string, n int, warmup, d time.Duration) phaseResult {
	now := time.Now()
	win := &window{from: now.Add(warmup), to: now.Add(warmup + d)}
	recs := make([]*recorder, n)
	var wg sync.WaitGroup
	var cpu0 map[string]float64
	var rt0, cmd0 float64
	var redis0 int64
	measuring := make(chan struct{})
	go func() {
		waitCtx(ctx, warmup)
		cpu0 = b.cpu()
		rt0, cmd0, _ = b.t.g.serverCounters(ctx)
		redis0 = redisStats(b.redis)
		close(measuring)
	}()
	for i := range n {
		recs[i] = &recorder{window: win}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(ctx, sc, i, n, recs[i])
		}()
	}
	stopProgress := progress(sc, n, win)
	wg.Wait()
	stopProgress()
	<-measuring
	cpu1 := b.cpu()
	rt1, cmd1, _ := b.t.g.serverCounters(ctx)
	redis1 := redisStats(b.redis)

	secs := d.Seconds()
	r := phaseResult{Scenario: sc, Workers: n, Seconds: secs, Kinds: map[string]summary{}, Cores: map[string]float64{}}
	var all []time.Duration
	for k := range numKinds {
		var lat []time.Duration
		for _, rc := range recs {
			lat = append(lat, rc.lat[k]...)
		}
		if len(lat) > 0 {
			all = append(all, lat...)
			r.Kinds[kindNames[k]] = summarize(lat, secs)
		}
	}
	for _, rc := range recs {
		r.Errors += rc.errs
		if r.FirstErr == "" {
			r.FirstErr = rc.firstErr
		}
	}
	r.All = summarize(all, secs)
	if sc == "flow" {
		r.Flows = r.Kinds[kindNames[kTokenCode]].RPS
	}
	// CPU and counters cover the warm-up's end to the last request's end; near enough
	// the window for per-request figures.
	elapsed := time.Since(win.from).Seconds()
	for name, c := range cpu1 {
		if name == "baseline" && !strings.HasPrefix(sc, "baseline") || name == "server" && strings.HasPrefix(sc, "baseline") {
			continue
		}
		r.Cores[name] = (c - cpu0[name]) / elapsed
	}
	reqs := float64(r.All.Count) * elapsed / secs
	if reqs > 0 {
		r.RedisCommands = float64(redis1-redis0-1) / reqs
		if !strings.HasPrefix(sc, "baseline") && b.t.counters {
			r.RoundTrips = (rt1 - rt0) / reqs
			r.ServerCommands = (cmd1 - cmd0) / reqs
		}
	}
	return r
}

func (b *bench) cpu() map[string]float64 {
	m := map[string]float64{}
	for name, pid := range b.procs {
		m[name] = cpuSeconds(pid)
	}
	m["server"] = cpuSeconds(b.t.proc.pid())
	return m
}

// work is one worker's loop until the window closes.
func (b *bench) work(ctx context.Context, sc string, i, n int, rec *recorder) {
	w := b.t.g.newWorker(i)
	for ctx.Err() == nil && time.Now().Before(rec.window.to) {
		var err error
		switch sc {
		case "baseline-a", "baseline-b", "introspect":
			base, k := b.t.g.server, kIntrospect
			if sc == "baseline-a" {
				base, k = b.baseA, kBaseline
			} else if sc == "baseline-b" {
				base, k = b.baseB, kBaseline
			}
			tok := b.t.tokens[(i+int(rec.window.done.Load()))%len(b.t.tokens)]
			err = w.introspect(rec, base, tok, k)
		case "refresh":
			err = w.refresh(rec, &b.t.grants[i])
		case "flow":
			_, err = w.flow(rec, nil)
		}
		if err != nil {
			// Do not spin on a broken server; errors are reported.
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// progress prints a line while a phase runs: in place on a terminal, else once.
func progress(sc string, n int, win *window) (stop func()) {
	st, _ := os.Stderr.Stat()
	tty := st != nil && st.Mode()&os.ModeCharDevice != 0
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				if tty {
					fmt.Fprint(os.Stderr, "\r\033[K")
				}
				return
			case <-t.C:
				if !tty {
					continue
				}
				el := time.Since(win.from).Seconds()
				if el < 0 {
					fmt.Fprintf(os.Stderr, "\r\033[K  %-10s c=%-3d warming up", sc, n)
					continue
				}
				fmt.Fprintf(os.Stderr, "\r\033[K  %-10s c=%-3d %4.0fs/%.0fs  %8.0f req/s  errors %d", sc, n, el,
					win.to.Sub(win.from).Seconds(), float64(win.done.Load())/el, win.errs.Load())
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func printPhase(r phaseResult) {
	extra := ""
	if r.Scenario == "flow" {
		extra = fmt.Sprintf("  (%.0f flows/s)", r.Flows)
	}
	fmt.Printf("  %-10s c=%-3d %s  errors %d%s\n", r.Scenario, r.Workers, r.All, r.Errors, extra)
	if r.FirstErr != "" {
		fmt.Printf("    first error: %s\n", r.FirstErr)
	}
}

// report is everything written to results.json.
type report struct {
	Machine            string             `json:"machine"`
	LoadAverage        string             `json:"load_average_at_end"`
	Started            string             `json:"started"`
	Elapsed            string             `json:"elapsed"`
	Workers            []int              `json:"workers"`
	Phases             []phaseResult      `json:"phases"`
	Accounting         []accounting       `json:"redis_per_request"`
	ServerPeakRSSMiB   float64            `json:"server_peak_rss_mib"`
	BaselinePeakRSSMiB float64            `json:"baseline_peak_rss_mib"`
	SetupErrors        int                `json:"setup_errors"`
	Ratios             map[string]float64 `json:"ratios_to_baseline_a"`
	RatiosB            map[string]float64 `json:"ratios_to_baseline_b"`
	Errors             int                `json:"errors"`
}

func (r *report) find(sc string, n int) phaseResult {
	for _, p := range r.Phases {
		if p.Scenario == sc && p.Workers == n {
			return p
		}
	}
	return phaseResult{}
}

func (r *report) ratios() {
	n := r.Workers[len(r.Workers)-1]
	a, b := r.find("baseline-a", n).All.RPS, r.find("baseline-b", n).All.RPS
	r.Ratios, r.RatiosB = map[string]float64{}, map[string]float64{}
	for _, sc := range []string{"introspect", "refresh", "flow", "baseline-b"} {
		p := r.find(sc, n)
		if a > 0 {
			r.Ratios[sc] = p.All.RPS / a
		}
		if b > 0 {
			r.RatiosB[sc] = p.All.RPS / b
		}
	}
	r.Errors = r.SetupErrors
	for _, p := range r.Phases {
		r.Errors += p.Errors
	}
}

func (r *report) write(o *options) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "results.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	if err := r.plot(o); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: plot:", err)
	}
	return nil
}

var errNoGnuplot = errors.New("gnuplot not found (apt-get install gnuplot-nox); no plot")

func (r *report) print() {
	fmt.Print("\n" + r.markdown())
}
