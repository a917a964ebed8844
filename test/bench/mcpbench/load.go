package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// counter counts requests to the stand-in authorization server.
type counter struct{ n atomic.Int64 }

func (c *counter) add()       { c.n.Add(1) }
func (c *counter) get() int64 { return c.n.Load() }

// child is one MCP server process.
type child struct {
	mode     string
	cmd      *exec.Cmd
	resource string // its MCP endpoint, also its resource identifier
	done     chan struct{}
	log      string
}

// startServer starts `mcpbench serve` and waits for the address it listens on.
func startServer(dir, mode, issuer string) (*child, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "mcp-"+mode+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "serve", "-mode", mode, "-issuer", issuer)
	cmd.Stderr = logf
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start the %s server: %w", mode, err)
	}
	c := &child{mode: mode, cmd: cmd, done: make(chan struct{}), log: logPath}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
			}
		}
	}()
	go func() { _ = cmd.Wait(); logf.Close(); close(c.done) }()
	select {
	case a := <-addr:
		c.resource = "http://" + a + "/mcp"
		return c, nil
	case <-c.done:
		b, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("the %s server exited: %s", mode, b)
	case <-time.After(10 * time.Second):
		c.stop()
		return nil, fmt.Errorf("the %s server did not start within 10 s", mode)
	}
}

func (c *child) stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// cpuSeconds is the process's user and system CPU time so far.
func (c *child) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

// phaseResult is one measured phase against one server.
type phaseResult struct {
	Mode        string  `json:"mode"`
	Calls       int     `json:"calls"`
	Errors      int     `json:"errors"`
	Throughput  float64 `json:"calls_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	ServerCPUus float64 `json:"server_cpu_us_per_call"`
}

// runPhase opens one MCP session per worker (tokens[i] as its bearer when given),
// warms up, then counts tool calls for o.duration.
func runPhase(ctx context.Context, c *child, tokens []string, o *options) (phaseResult, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.workers, MaxConnsPerHost: o.workers}}
	defer client.CloseIdleConnections()
	sessions := make([]*session, o.workers)
	for i := range sessions {
		s := &session{client: client, url: c.resource}
		if tokens != nil {
			s.token = tokens[i]
		}
		if err := s.initialize(ctx); err != nil {
			return phaseResult{}, fmt.Errorf("%s server: %w", c.mode, err)
		}
		sessions[i] = s
	}

	var measuring, stopping atomic.Bool
	lat := make([][]time.Duration, o.workers)
	errs := make([]int, o.workers)
	var wg sync.WaitGroup
	for i, s := range sessions {
		wg.Go(func() {
			for n := 0; !stopping.Load(); n++ {
				start := time.Now()
				err := s.call(ctx, n)
				if measuring.Load() {
					if err != nil {
						errs[i]++
						if errs[i] == 1 {
							fmt.Fprintf(os.Stderr, "%s: %v\n", c.mode, err)
						}
						continue
					}
					lat[i] = append(lat[i], time.Since(start))
				}
			}
		})
	}
	time.Sleep(o.warmup)
	cpu0, t0 := c.cpuSeconds(), time.Now()
	measuring.Store(true)
	time.Sleep(o.duration)
	measuring.Store(false)
	elapsed, cpu := time.Since(t0), c.cpuSeconds()-cpu0
	stopping.Store(true)
	wg.Wait()

	var all []time.Duration
	res := phaseResult{Mode: c.mode}
	for i := range lat {
		all = append(all, lat[i]...)
		res.Errors += errs[i]
	}
	slices.Sort(all)
	res.Calls = len(all)
	res.Throughput = float64(len(all)) / elapsed.Seconds()
	if len(all) > 0 {
		res.P50ms = float64(all[len(all)/2].Microseconds()) / 1000
		res.P99ms = float64(all[len(all)*99/100].Microseconds()) / 1000
		res.ServerCPUus = cpu * 1e6 / float64(len(all))
	}
	return res, nil
}

// session is one MCP client session over the streamable HTTP transport, spoken by
// hand so the client's own cost stays small and equal for both servers.
type session struct {
	client   *http.Client
	url      string
	token    string
	id       string
	protocol string
}

func (s *session) initialize(ctx context.Context) error {
	body, hdr, err := s.post(ctx, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcpbench","version":"1"}}}`)
	if err != nil {
		return fmt.Errorf("initialize: %w", err)
	}
	var msg struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if err := json.Unmarshal(jsonOf(body), &msg); err != nil || msg.Result.ProtocolVersion == "" {
		return fmt.Errorf("initialize: unexpected answer %q", firstLine(string(body)))
	}
	s.id, s.protocol = hdr.Get("Mcp-Session-Id"), msg.Result.ProtocolVersion
	if _, _, err := s.post(ctx, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); err != nil {
		return fmt.Errorf("initialized: %w", err)
	}
	return nil
}

// call sends one tools/call of echo and checks the answer.
func (s *session) call(ctx context.Context, n int) error {
	text := "hello " + strconv.Itoa(n)
	body, _, err := s.post(ctx, `{"jsonrpc":"2.0","id":`+strconv.Itoa(n+1)+`,"method":"tools/call","params":{"name":"echo","arguments":{"text":"`+text+`"}}}`)
	if err != nil {
		return err
	}
	if !bytes.Contains(body, []byte(`"text":"`+text+`"`)) {
		return fmt.Errorf("tools/call: unexpected answer %q", firstLine(string(body)))
	}
	return nil
}

func (s *session) post(ctx context.Context, msg string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, strings.NewReader(msg))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if s.id != "" {
		req.Header.Set("Mcp-Session-Id", s.id)
		req.Header.Set("Mcp-Protocol-Version", s.protocol)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	drain(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return nil, nil, fmt.Errorf("status %d: %s", resp.StatusCode, firstLine(string(body)))
	}
	return body, resp.Header, nil
}

// jsonOf returns the JSON message of an answer sent as JSON or as one SSE event.
func jsonOf(body []byte) []byte {
	for line := range bytes.SplitSeq(body, []byte("\n")) {
		if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			return data
		}
	}
	return body
}

// report is what the run measured, for docs/performance.md.
type report struct {
	Date            string        `json:"date"`
	Ratio           float64       `json:"jwt_over_open"`
	Target          float64       `json:"target"`
	OpenThroughput  float64       `json:"open_calls_per_s"`
	JWTThroughput   float64       `json:"jwt_calls_per_s"`
	OpenServerCPUus float64       `json:"open_server_cpu_us_per_call"`
	JWTServerCPUus  float64       `json:"jwt_server_cpu_us_per_call"`
	VerifyFirstUS   float64       `json:"verify_first_us"`
	VerifyCachedUS  float64       `json:"verify_cached_us"`
	Errors          int           `json:"errors"`
	Introspections  int64         `json:"introspections"`
	JWKSFetches     int64         `json:"jwks_fetches"`
	FeedReads       int64         `json:"feed_reads"`
	Phases          []phaseResult `json:"phases"`
}

// summarize sums each mode's phases: the ratio is of total calls over total time.
func summarize(phases []phaseResult, v verification, as *authServer) *report {
	r := &report{Date: time.Now().UTC().Format(time.RFC3339), Target: target, Phases: phases,
		VerifyFirstUS: v.firstUS, VerifyCachedUS: v.cachedUS,
		Introspections: as.introspections.get(), JWKSFetches: as.jwksFetches.get(), FeedReads: as.feedReads.get()}
	sum := func(mode string) (tp, cpu float64) {
		var n, calls float64
		for _, p := range phases {
			if p.Mode == mode {
				tp += p.Throughput
				cpu += p.ServerCPUus * float64(p.Calls)
				calls += float64(p.Calls)
				n++
			}
		}
		if n == 0 || calls == 0 {
			return 0, 0
		}
		return tp / n, cpu / calls
	}
	r.OpenThroughput, r.OpenServerCPUus = sum("open")
	r.JWTThroughput, r.JWTServerCPUus = sum("jwt")
	for _, p := range phases {
		r.Errors += p.Errors
	}
	if r.OpenThroughput > 0 {
		r.Ratio = r.JWTThroughput / r.OpenThroughput
	}
	return r
}

func (r *report) write(dir string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "mcp.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "| | unprotected | JWT verified |\n| --- | --- | --- |\n")
	fmt.Fprintf(&md, "| tool calls/s | %.0f | %.0f (%.0f%%) |\n", r.OpenThroughput, r.JWTThroughput, 100*r.Ratio)
	fmt.Fprintf(&md, "| server CPU per call | %.0f µs | %.0f µs |\n", r.OpenServerCPUus, r.JWTServerCPUus)
	fmt.Fprintf(&md, "\nOne JWT verification: %.1f µs for a token seen first, %.2f µs for one seen before. "+
		"Requests to the authorization server during the run: %d introspections, %d JWKS fetches, %d revocation feed reads.\n",
		r.VerifyFirstUS, r.VerifyCachedUS, r.Introspections, r.JWKSFetches, r.FeedReads)
	return os.WriteFile(filepath.Join(dir, "mcp.md"), []byte(md.String()), 0o644)
}
