package redisserver

import (
	"fmt"
	"strings"
	"testing"
)

func TestStartAnswersAndStops(t *testing.T) {
	srv := Start(t, Options{MaxMemoryPolicy: "allkeys-lru"})
	if reply, err := command(srv.Addr, "PING"); err != nil || reply != "PONG" {
		t.Fatalf("PING: %q, %v", reply, err)
	}
	reply, err := command(srv.Addr, "CONFIG", "GET", "maxmemory-policy")
	if err != nil || reply != "maxmemory-policy allkeys-lru" {
		t.Errorf("CONFIG GET maxmemory-policy: %q, %v", reply, err)
	}
	reply, err = command(srv.Addr, "CONFIG", "GET", "save")
	if err != nil || strings.TrimSpace(strings.TrimPrefix(reply, "save")) != "" {
		t.Errorf("the server persists: CONFIG GET save = %q, %v", reply, err)
	}
	srv.Stop()
	if _, err := command(srv.Addr, "PING"); err == nil {
		t.Error("the server still answers after Stop")
	}
	srv.Stop() // idempotent
}

func TestDefaultPolicyIsNoEviction(t *testing.T) {
	srv := Start(t)
	reply, err := command(srv.Addr, "CONFIG", "GET", "maxmemory-policy")
	if err != nil || reply != "maxmemory-policy noeviction" {
		t.Errorf("CONFIG GET maxmemory-policy: %q, %v", reply, err)
	}
}

func TestSentinelReportsItsMaster(t *testing.T) {
	srv := Start(t)
	s := StartSentinel(t, srv)
	reply, err := command(s.Addr, "SENTINEL", "get-master-addr-by-name", s.MasterName)
	if err != nil || reply != strings.Replace(srv.Addr, ":", " ", 1) {
		t.Errorf("sentinel reports master %q (%v), want %s", reply, err, srv.Addr)
	}
}

// recordingTB stands in for a test to see how requireBinary ends it.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()           {}
func (r *recordingTB) Fatal(args ...any) { r.fatal = fmt.Sprint(args...) }
func (r *recordingTB) Skip(args ...any)  { r.skip = fmt.Sprint(args...) }

func TestMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &recordingTB{TB: t}
		requireBinary(r, "redis-server")
		got, other := r.skip, r.fatal
		if ci != "" {
			got, other = r.fatal, r.skip
		}
		if !strings.Contains(got, "apt-get install redis-server") || other != "" {
			t.Errorf("CI=%q: Skip(%q), Fatal(%q); want the install hint from Skip without CI, from Fatal under CI",
				ci, r.skip, r.fatal)
		}
	}
}

func TestRestartReloadsWhatItPersisted(t *testing.T) {
	srv := Start(t, Options{Args: []string{"--appendonly", "yes", "--appendfsync", "always"}})
	if _, err := command(srv.Addr, "SET", "k", "v"); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := command(srv.Addr, "PING"); err == nil {
		t.Fatal("the server still answers after Stop")
	}
	srv.Restart(t)
	if reply, err := command(srv.Addr, "GET", "k"); err != nil || reply != "v" {
		t.Errorf("GET k after a restart: %q, %v", reply, err)
	}
}
