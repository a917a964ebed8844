package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpauth/mcpauth/examples/mcpserver/server"
)

// startMCPServer is step 6: the example MCP server, protected by the authorization
// server, introspecting with the credentials the operator wrote for its MCPClient, and calling the dev
// OpenID provider's userinfo endpoint with the user's upstream token.
func (d *dev) startMCPServer(ctx context.Context) error {
	w, err := d.logFile("mcpserver")
	if err != nil {
		return err
	}
	h, err := server.New(server.Config{
		ResourceURL:         d.mcpURL(),
		Issuer:              d.issuer(),
		ClientID:            d.introspect.id,
		ClientSecret:        d.introspect.secret,
		UpstreamUserinfoURL: d.idp.UserinfoEndpoint,
		Logger:              slog.New(slog.NewTextHandler(w, nil)),
	})
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", d.o.mcpPort)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return withHint(err, "choose another port with --mcp-port (or MCPAUTH_DEV_MCP_PORT)")
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	stopping := make(chan struct{})
	go func() {
		defer close(done)
		err := srv.Serve(l)
		select {
		case <-stopping:
		default:
			d.componentDied("the example MCP server", err)
		}
	}()
	d.onStop("stopping the example MCP server", func() error {
		close(stopping)
		// Streams (an MCP client's GET) never go idle: a short grace, then cut them.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		<-done
		return nil
	})

	// What an MCP client sees first: 401 with the protected-resource metadata's URL.
	if err := poll(ctx, 100*time.Millisecond, func() error { return d.checkChallenge(ctx) }); err != nil {
		return withHint(err, "see %s", d.logPath("mcpserver"))
	}
	// The introspection client works (an unknown token is inactive, not an error).
	if err := d.checkIntrospection(ctx); err != nil {
		return withHint(err, "see %s", d.logPath("authserver"))
	}
	d.note("resource %s, introspection client %s; log %s", d.mcpURL(), d.introspect.id, d.logPath("mcpserver"))
	return nil
}

// checkChallenge is nil when the MCP endpoint answers an anonymous request with 401
// and a resource_metadata challenge.
func (d *dev) checkChallenge(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.mcpURL(), strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if c := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(c, "resource_metadata=") {
		return fmt.Errorf("POST %s without a token: %s, WWW-Authenticate %q; want 401 with resource_metadata", d.mcpURL(), resp.Status, c)
	}
	return nil
}

func (d *dev) checkIntrospection(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.issuer()+"/oauth/introspect",
		strings.NewReader(url.Values{"token": {"not-a-token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(d.introspect.id), url.QueryEscape(d.introspect.secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("the MCP server's introspection client is refused: " + resp.Status)
	}
	return nil
}
