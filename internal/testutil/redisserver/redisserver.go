// Package redisserver runs real Redis processes for tests: a standalone redis-server,
// a redis-sentinel watching one, or a small Redis Cluster. Each lives in a temporary
// directory on free loopback ports, keeps nothing on disk, and is killed when the test
// ends.
//
// Tests run against the real server rather than a fake because the store's guarantees
// (Lua atomicity, TTLs, hash-tag slots, eviction policy) are Redis semantics that a
// fake would only imitate.
//
// Where the binaries are missing, the test is skipped with the command that installs
// them, except when the CI environment variable is set: then it fails, so that a CI
// image without Redis cannot pass silently.
//
//	srv := redisserver.Start(t)
//	rdb := goredis.NewClient(&goredis.Options{Addr: srv.Addr})
package redisserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a process may take to answer; redis-server is ready
// in milliseconds, so this only matters on a badly overloaded machine.
const startTimeout = 10 * time.Second

// MasterName is the name under which StartSentinel monitors its master.
const MasterName = "mymaster"

// Options adjusts a server started by Start.
type Options struct {
	// MaxMemoryPolicy is the eviction policy; empty means "noeviction", the only one
	// the store accepts.
	MaxMemoryPolicy string
	// Args are extra redis-server arguments, such as "--requirepass", "secret".
	Args []string
}

// Server is a running redis-server.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// Dir is the server's working directory; redis.log there has its log.
	Dir string

	bin  string
	args []string
	mu   sync.Mutex
	proc *process
}

// Stop kills the server (SIGKILL, as a crash) before the test ends, to test what
// happens when Redis goes away. It is safe to call more than once; the test's cleanup
// calls it too.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.mu.Unlock()
	p.stop()
}

// Restart stops the server if it runs, then starts it again with the same arguments,
// port and directory, and waits until it answers PING. A server started with
// persistence (Options.Args "--appendonly", "yes") reloads what it wrote.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	p, err := startProcess(t, s.Dir, s.Addr, s.bin, s.args...)
	if err != nil {
		t.Fatalf("redisserver: restart on %s: %v", s.Addr, err)
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
}

// Start runs a standalone redis-server and waits until it answers PING.
func Start(t testing.TB, opts ...Options) *Server {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.MaxMemoryPolicy == "" {
		o.MaxMemoryPolicy = "noeviction"
	}
	bin := requireBinary(t, "redis-server")
	dir := t.TempDir()
	var srv *Server
	retryOnPortRace(t, func() error {
		port := freePort(t)
		args := append(serverArgs(dir, port), "--maxmemory-policy", o.MaxMemoryPolicy)
		args = append(args, o.Args...)
		p, err := startProcess(t, dir, loopback(port), bin, args...)
		if err != nil {
			return err
		}
		srv = &Server{Addr: loopback(port), Dir: dir, bin: bin, args: args, proc: p}
		return nil
	})
	return srv
}

// Sentinel is a running redis-sentinel monitoring one master under MasterName.
type Sentinel struct {
	// Addr is the sentinel's "127.0.0.1:port": the address clients dial.
	Addr string
	// MasterName is the name clients ask the sentinel for.
	MasterName string
}

// StartSentinel runs a redis-sentinel that monitors master, and waits until it
// reports the master's address. A client configured with the sentinel's Addr and
// MasterName reaches master through it.
func StartSentinel(t testing.TB, master *Server) *Sentinel {
	t.Helper()
	return startSentinel(t, master, 1, 5*time.Second)
}

// StartReplica runs a redis-server replicating master and waits until its link to the
// master is up, so that a Sentinel started afterwards sees it at once.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	host, port, err := net.SplitHostPort(master.Addr)
	if err != nil {
		t.Fatalf("redisserver: master address %q: %v", master.Addr, err)
	}
	// The master waits 5 s by default before a diskless full sync, in case more
	// replicas come; there is no one else to wait for.
	if _, err := command(master.Addr, "CONFIG", "SET", "repl-diskless-sync-delay", "0"); err != nil {
		t.Fatalf("redisserver: CONFIG SET on master %s: %v", master.Addr, err)
	}
	r := Start(t, Options{Args: []string{"--replicaof", host, port}})
	if reply, err := waitFor(r.Addr, []string{"INFO", "replication"},
		func(reply string) bool { return strings.Contains(reply, "master_link_status:up") }); err != nil {
		t.Fatalf("redisserver: replica %s never linked to %s (last reply %q): %v", r.Addr, master.Addr, reply, err)
	}
	return r
}

// FailoverOptions adjust StartSentinels.
type FailoverOptions struct {
	// Sentinels is how many redis-sentinel processes watch the master; the quorum is a
	// majority of them. Default 3.
	Sentinels int
	// DownAfter is how long the master may stay silent before a sentinel calls it
	// down. Default 500 ms, so that tests see a failover within a few seconds.
	DownAfter time.Duration
}

// StartSentinels runs several redis-sentinel processes that monitor master (and so
// learn its replicas; start them first, with StartReplica) and can fail it over: with
// a majority quorum and a short DownAfter, killing the master promotes a replica in a
// few seconds. It waits until every sentinel knows the master, its replicas and the
// other sentinels.
func StartSentinels(t testing.TB, master *Server, opts FailoverOptions) []*Sentinel {
	t.Helper()
	if opts.Sentinels <= 0 {
		opts.Sentinels = 3
	}
	if opts.DownAfter <= 0 {
		opts.DownAfter = 500 * time.Millisecond
	}
	replicas := atoi(infoField(t, master.Addr, "connected_slaves"))
	var out []*Sentinel
	for range opts.Sentinels {
		out = append(out, startSentinel(t, master, opts.Sentinels/2+1, opts.DownAfter))
	}
	for _, s := range out {
		reply, err := waitFor(s.Addr, []string{"SENTINEL", "MASTER", MasterName}, func(reply string) bool {
			f := strings.Fields(reply)
			return fieldAfter(f, "num-slaves") >= replicas && fieldAfter(f, "num-other-sentinels") == opts.Sentinels-1
		})
		if err != nil {
			t.Fatalf("redisserver: sentinel %s never saw %d replicas and %d other sentinels (last reply %q): %v",
				s.Addr, replicas, opts.Sentinels-1, reply, err)
		}
	}
	return out
}

// SentinelAddrs returns the sentinels' addresses, as a client wants them.
func SentinelAddrs(sentinels []*Sentinel) []string {
	var addrs []string
	for _, s := range sentinels {
		addrs = append(addrs, s.Addr)
	}
	return addrs
}

// MasterAddr asks a sentinel where the master is now ("127.0.0.1:port").
func (s *Sentinel) MasterAddr() (string, error) {
	reply, err := command(s.Addr, "SENTINEL", "get-master-addr-by-name", s.MasterName)
	if err != nil {
		return "", err
	}
	host, port, ok := strings.Cut(reply, " ")
	if !ok {
		return "", fmt.Errorf("sentinel answered %q", reply)
	}
	return net.JoinHostPort(host, port), nil
}

// fieldAfter returns the number that follows name in a flattened key-value reply.
func fieldAfter(fields []string, name string) int {
	for i := 0; i+1 < len(fields); i++ {
		if fields[i] == name {
			return atoi(fields[i+1])
		}
	}
	return -1
}

// infoField reads one field of INFO from a server.
func infoField(t testing.TB, addr, name string) string {
	t.Helper()
	reply, err := command(addr, "INFO")
	if err != nil {
		t.Fatalf("redisserver: INFO on %s: %v", addr, err)
	}
	for _, line := range strings.Split(reply, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
			return v
		}
	}
	return ""
}

func startSentinel(t testing.TB, master *Server, quorum int, downAfter time.Duration) *Sentinel {
	t.Helper()
	bin := requireBinary(t, "redis-sentinel")
	host, masterPort, err := net.SplitHostPort(master.Addr)
	if err != nil {
		t.Fatalf("redisserver: master address %q: %v", master.Addr, err)
	}
	dir := t.TempDir()
	var s *Sentinel
	retryOnPortRace(t, func() error {
		port := freePort(t)
		// Sentinel rewrites its config file, so it has to be a writable file of its own.
		conf := strings.Join([]string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"dir " + dir,
			"logfile " + filepath.Join(dir, "redis.log"),
			fmt.Sprintf("sentinel monitor %s %s %s %d", MasterName, host, masterPort, quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", MasterName, downAfter.Milliseconds()),
			// A failover that stalls is retried after twice this; keep it short.
			fmt.Sprintf("sentinel failover-timeout %s %d", MasterName, max(10*downAfter.Milliseconds(), 3000)),
		}, "\n") + "\n"
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatalf("redisserver: %v", err)
		}
		p, err := startProcess(t, dir, loopback(port), bin, path)
		if err != nil {
			return err
		}
		addr := loopback(port)
		reply, err := waitFor(addr, []string{"SENTINEL", "get-master-addr-by-name", MasterName},
			func(reply string) bool { return strings.Contains(reply, masterPort) })
		if err != nil {
			p.stop()
			t.Fatalf("redisserver: sentinel never reported its master (last reply %q): %v\n%s", reply, err, p.log())
		}
		s = &Sentinel{Addr: addr, MasterName: MasterName}
		return nil
	})
	return s
}

// Cluster is a running Redis Cluster of masters without replicas.
type Cluster struct {
	// Addrs are the nodes' addresses; a cluster client needs any one of them.
	Addrs []string
}

// StartCluster runs n redis-server nodes in cluster mode (n >= 3, the minimum
// redis-cli accepts), joins them with `redis-cli --cluster create` so that the 16384
// slots are spread over them, and waits until every node reports cluster_state:ok.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redisserver: a cluster needs at least 3 masters, not %d", n)
	}
	bin := requireBinary(t, "redis-server")
	cli := requireBinary(t, "redis-cli")
	c := &Cluster{}
	for range n {
		dir := t.TempDir() // each node keeps its own nodes.conf and log
		retryOnPortRace(t, func() error {
			port, busPort := freePort(t), freePort(t)
			args := append(serverArgs(dir, port),
				"--maxmemory-policy", "noeviction",
				"--cluster-enabled", "yes",
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				// An explicit bus port: the default port+10000 may be taken or > 65535.
				"--cluster-port", strconv.Itoa(busPort),
			)
			if _, err := startProcess(t, dir, loopback(port), bin, args...); err != nil {
				return err
			}
			c.Addrs = append(c.Addrs, loopback(port))
			return nil
		})
	}
	args := append([]string{"--cluster", "create"}, c.Addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redisserver: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range c.Addrs {
		reply, err := waitFor(addr, []string{"CLUSTER", "INFO"},
			func(reply string) bool { return strings.Contains(reply, "cluster_state:ok") })
		if err != nil {
			t.Fatalf("redisserver: cluster node %s never became ok (last reply %q): %v", addr, reply, err)
		}
	}
	return c
}

// serverArgs are the flags every redis-server gets: loopback only, nothing persisted.
func serverArgs(dir string, port int) []string {
	return []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "",
		"--appendonly", "no",
		"--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"),
	}
}

// requireBinary returns the path of name, or ends the test: Fatal under CI, Skip
// elsewhere, with the install command either way.
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found on PATH: install redis-server (apt-get install redis-server redis-sentinel)", name)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	} else {
		t.Skip(msg)
	}
	return ""
}

// errPortTaken reports that a process exited at start, most likely because another
// process took the free port between freePort and the bind.
var errPortTaken = errors.New("redis process exited at start")

// retryOnPortRace runs start until it does not fail with errPortTaken, a few times.
func retryOnPortRace(t testing.TB, start func() error) {
	t.Helper()
	var err error
	for range 3 {
		if err = start(); !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("redisserver: %v", err)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redisserver: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// process is a started Redis binary, killed at the test's cleanup.
type process struct {
	cmd     *exec.Cmd
	dir     string
	done    chan struct{} // closed when the process has exited
	stopped sync.Once
}

// startProcess starts bin and waits until it answers PING on addr. It returns errPortTaken
// when the process exits before answering, so the caller can try another port.
func startProcess(t testing.TB, dir, addr, bin string, args ...string) (*process, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("redisserver: start %s: %v", bin, err)
	}
	p := &process{cmd: cmd, dir: dir, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)

	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("%w: %s\n%s", errPortTaken, bin, p.log())
		default:
		}
		if reply, err := command(addr, "PING"); err == nil && reply == "PONG" {
			return p, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.stop()
	t.Fatalf("redisserver: %s did not answer on %s within %s\n%s", bin, addr, startTimeout, p.log())
	return nil, nil
}

func (p *process) stop() {
	p.stopped.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

// log returns the tail of the process's log, for failure messages.
func (p *process) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "redis.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func atoi(s string) int { n, _ := strconv.Atoi(strings.TrimSpace(s)); return n }

// waitFor repeats a command until ok accepts its reply or startTimeout passes.
func waitFor(addr string, args []string, ok func(reply string) bool) (string, error) {
	deadline := time.Now().Add(startTimeout)
	var reply string
	var err error
	for time.Now().Before(deadline) {
		if reply, err = command(addr, args...); err == nil && ok(reply) {
			return reply, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err == nil {
		err = errors.New("timed out")
	}
	return reply, err
}

// command sends one command over a fresh connection and returns the reply flattened
// to text. It speaks just enough RESP for readiness checks, so this package does not
// depend on a Redis client library.
func command(addr string, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(conn))
}

// readReply reads one RESP2 reply; arrays come back as their elements joined by
// spaces.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n := atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n := atoi(line[1:])
		parts := make([]string, 0, max(n, 0))
		for range n {
			s, err := readReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " "), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
