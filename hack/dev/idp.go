package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// idpInfo is what the dev OpenID provider announces when it listens.
type idpInfo struct {
	Issuer           string `json:"issuer"`
	UserinfoEndpoint string `json:"userinfo_endpoint"`
}

// startIdP is step 3: the end-to-end test's upstream OpenID provider (panva's
// oidc-provider) with the dev user and one client, our authorization server.
func (d *dev) startIdP(ctx context.Context) error {
	m := d.manifests
	env := append(os.Environ(),
		"IDP_CLIENT_ID="+m.provider.Spec.ClientID,
		"IDP_CLIENT_SECRET="+m.upstreamSecret,
		"IDP_REDIRECT_URI="+m.callbackURL(),
		"IDP_USER_LOGIN="+devUserLogin,
		"IDP_USER_PASSWORD="+devUserPassword,
		"IDP_USER_SUB="+devUserSub,
		"IDP_USER_EMAIL="+devUserEmail,
		"IDP_USER_NAME="+devUserName,
		"IDP_PORT="+strconv.Itoa(d.o.idpPort),
	)
	if d.o.mode == "cluster" {
		env = append(env, "IDP_HOST="+clusterBridgeIP)
	}
	logw, err := d.logFile("idp")
	if err != nil {
		return err
	}
	cmd := exec.Command(d.o.node, d.o.idpScript)
	cmd.Dir = filepath.Dir(d.o.idpScript)
	cmd.Env = env
	cmd.Stderr = logw
	// A pipe of our own rather than StdoutPipe, whose reads must end before Wait.
	stdout, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = pw
	setParentDeathSignal(cmd)
	err = cmd.Start()
	_ = pw.Close()
	if err != nil {
		_ = stdout.Close()
		return withHint(fmt.Errorf("start %s: %w", d.o.node, err), "install Node.js, or name it with --node")
	}
	exited := make(chan error, 1)
	stopping := make(chan struct{})
	d.onStop("stopping the dev OpenID provider (node)", func() error {
		close(stopping)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return errors.New("killed after 5s")
		}
	})
	_ = writePidfile(d.pidfile())

	// The first line on stdout announces the provider; the rest goes to the log.
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(logw, r)
		_ = stdout.Close()
	}()
	go func() {
		err := cmd.Wait()
		exited <- err
		select {
		case <-stopping:
		default:
			d.componentDied("the dev OpenID provider", withHint(
				fmt.Errorf("node: %v; the end of %s:\n%s", err, d.logPath("idp"), tail(filepath.Join(d.logDir, "idp.log"), 8)),
				"a missing module: run `make install-deps`; EADDRINUSE: another program took port %d, choose another with --idp-port", d.o.idpPort))
		}
	}()
	var line string
	select {
	case line = <-lines:
	case <-ctx.Done():
		return ctx.Err()
	}
	if strings.TrimSpace(line) == "" {
		time.Sleep(200 * time.Millisecond) // let the exit be logged
		return withHint(fmt.Errorf("node exited before the provider listened:\n%s", tail(filepath.Join(d.logDir, "idp.log"), 10)),
			"if a module is missing, run `make install-deps`; if the port is taken, --idp-port")
	}
	var info idpInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		return fmt.Errorf("the provider's first line is not its announcement: %q", line)
	}
	if info.Issuer != d.idpURL() {
		return fmt.Errorf("the provider listens at %s, not %s", info.Issuer, d.idpURL())
	}
	d.idp = &info
	d.note("issuer %s, user %s / password %s; log %s", info.Issuer, devUserLogin, devUserPassword, d.logPath("idp"))
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
