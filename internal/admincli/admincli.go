// Package admincli is the `mcpauth` command line: `mcpauth admin grants` lists a
// user's (or a client's) grants, `mcpauth admin revoke` revokes every grant of a
// user, of a client or of the whole provider, and `mcpauth admin clients` lists the
// dynamic registrations; `mcpauth admin approvals` lists the clients approval mode
// holds, and `mcpauth admin approve` and `deny` decide on one. All go through the
// authorization server's admin API (package
// authserver/adminapi). cmd/mcpauth only calls Run.
//
// Exit codes: 0 success, 1 the server or the network failed, 2 bad usage.
package admincli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
)

// Exit codes.
const (
	ExitOK     = 0
	ExitFailed = 1
	ExitUsage  = 2
)

// Environment variables the CLI reads.
const (
	// EnvAdminToken holds the admin token when --token-file is not given.
	EnvAdminToken = "MCPAUTH_ADMIN_TOKEN"
	// EnvServer is the default of --server.
	EnvServer = "MCPAUTH_SERVER"
)

// DefaultServer is where `kubectl port-forward svc/<provider>-authserver 8080` puts
// the server.
const DefaultServer = "http://127.0.0.1:8080"

// requestTimeout bounds one call: revoking a whole provider's grants takes a few
// seconds per ten thousand on Redis.
const requestTimeout = 2 * time.Minute

// Env is what Run reads from the process; tests pass their own.
type Env struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	ReadFile       func(string) ([]byte, error)
	// HTTPClient makes the calls; nil means one with requestTimeout.
	HTTPClient *http.Client
}

const usage = `mcpauth: administer an mcpauth authorization server.

Usage:
  mcpauth admin grants --user USER [--client CLIENT] [flags]
  mcpauth admin grants --client CLIENT [flags]
  mcpauth admin grants --all [flags]
  mcpauth admin revoke --user USER | --client CLIENT | --all [flags]
  mcpauth admin clients [flags]
  mcpauth admin approvals [--pending | --status STATUS] [flags]
  mcpauth admin approve CLIENT_ID [flags]
  mcpauth admin deny CLIENT_ID [flags]

Commands:
  admin grants   List live grants (one user's authorization of one client each).
  admin revoke   Revoke every grant of a user, of a client, or of the whole provider:
                 their access and refresh tokens stop working at once. Revoking a user
                 or all also deletes the users' upstream tokens from the server.
  admin clients  List the live dynamic registrations (RFC 7591): ID, name, when made
                 and last used (recorded at most once an hour), when they go unless
                 used again, the address they came from, their redirect URIs.
  admin approvals
                 List the dynamic and metadata-document clients of approval mode
                 (clientPolicy.requireApproval): --pending those waiting for an
                 administrator, --status approved or denied the decided ones.
  admin approve  Let a client held by approval mode complete its logins (a dynamic
                 client's ID, or a metadata document's https URL, which may be
                 approved before it asks).
  admin deny     Refuse a client for good and revoke its grants; approve lifts it.

Flags of every command:
  --server URL        The server's issuer URL, or where a port-forward reaches it
                      (default $MCPAUTH_SERVER, else ` + DefaultServer + `).
  --token-file PATH   File holding the admin token (the server's secrets.adminTokenFile;
                      from Kubernetes: Secret <provider>-authserver-admin, key admin-token).
                      Default: the token in $MCPAUTH_ADMIN_TOKEN.
  --json              Print the server's JSON answer.
  --insecure-skip-tls-verify
                      Do not verify the server's TLS certificate: for
                      'kubectl exec' into a pod serving TLS on 127.0.0.1, whose
                      certificate names the public host. Never across a network.

Exit status: 0 success, 1 the server or the network failed, 2 bad usage.
`

// Run runs the command line args (without the program name) and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.ReadFile == nil {
		env.ReadFile = os.ReadFile
	}
	if env.HTTPClient == nil {
		env.HTTPClient = &http.Client{Timeout: requestTimeout}
	}
	switch {
	case len(args) == 0:
		fmt.Fprint(env.Stderr, usage)
		return ExitUsage
	case args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help":
		fmt.Fprint(env.Stdout, usage)
		return ExitOK
	case args[0] != "admin":
		return usageError(env, "unknown command %q", args[0])
	case len(args) == 1:
		return usageError(env, "admin needs a command: grants, revoke, clients, approvals, approve or deny")
	}
	cmd, rest := args[1], args[2:]
	switch cmd {
	case "grants", "revoke", "clients", "approvals", "approve", "deny":
	case "-h", "--help", "-help", "help":
		fmt.Fprint(env.Stdout, usage)
		return ExitOK
	default:
		return usageError(env, "unknown admin command %q (want grants, revoke, clients, approvals, approve or deny)", cmd)
	}
	o, code := parseFlags(cmd, rest, env)
	if code >= 0 {
		return code
	}
	c, err := newClient(o, env)
	if err != nil {
		return usageError(env, "%v", err)
	}
	switch cmd {
	case "grants":
		err = c.grants(ctx, o, env.Stdout)
	case "clients":
		err = c.clients(ctx, o, env.Stdout)
	case "revoke":
		err = c.revoke(ctx, o, env.Stdout)
	case "approvals":
		err = c.approvals(ctx, o, env.Stdout)
	default:
		err = c.decide(ctx, o, env.Stdout)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "mcpauth: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}

func usageError(env Env, format string, args ...any) int {
	fmt.Fprintf(env.Stderr, "mcpauth: "+format+"\nRun 'mcpauth --help' for usage.\n", args...)
	return ExitUsage
}

// options are the parsed flags of one command.
type options struct {
	cmd       string
	server    string
	tokenFile string
	user      string
	client    string
	all       bool
	json      bool
	insecure  bool
	// pending and status filter approvals; clientID is approve's and deny's argument.
	pending  bool
	status   string
	clientID string
}

// parseFlags parses a command's flags; code is -1 to go on, else the exit code.
func parseFlags(cmd string, args []string, env Env) (o options, code int) {
	o.cmd = cmd
	fs := flag.NewFlagSet("mcpauth admin "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.server, "server", "", "")
	fs.StringVar(&o.tokenFile, "token-file", "", "")
	fs.StringVar(&o.user, "user", "", "")
	fs.StringVar(&o.client, "client", "", "")
	fs.BoolVar(&o.all, "all", false, "")
	fs.BoolVar(&o.json, "json", false, "")
	fs.BoolVar(&o.insecure, "insecure-skip-tls-verify", false, "")
	if cmd == "approvals" {
		fs.BoolVar(&o.pending, "pending", false, "")
		fs.StringVar(&o.status, "status", "", "")
	}
	parse := func(args []string) int {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(env.Stdout, usage)
				return ExitOK
			}
			return usageError(env, "%v", err)
		}
		return -1
	}
	if code := parse(args); code >= 0 {
		return o, code
	}
	if (cmd == "approve" || cmd == "deny") && fs.NArg() > 0 {
		// The client ID may come before the flags or after them.
		o.clientID = fs.Arg(0)
		if code := parse(fs.Args()[1:]); code >= 0 {
			return o, code
		}
	}
	if fs.NArg() > 0 {
		return o, usageError(env, "unexpected argument %q", fs.Arg(0))
	}
	if o.server == "" {
		o.server = env.Getenv(EnvServer)
	}
	if o.server == "" {
		o.server = DefaultServer
	}
	switch {
	case cmd == "revoke" && countSet(o.user != "", o.client != "", o.all) != 1:
		return o, usageError(env, "revoke needs exactly one of --user, --client or --all")
	case cmd == "grants" && o.all && (o.user != "" || o.client != ""):
		return o, usageError(env, "grants takes --all alone, or --user and/or --client")
	case cmd == "grants" && !o.all && o.user == "" && o.client == "":
		return o, usageError(env, "grants needs --user, --client or --all")
	case cmd == "clients" && (o.all || o.user != "" || o.client != ""):
		return o, usageError(env, "clients takes no --user, --client or --all: it lists every dynamic registration")
	case (cmd == "approve" || cmd == "deny") && o.clientID == "":
		return o, usageError(env, "%s needs a client ID: mcpauth admin %s CLIENT_ID", cmd, cmd)
	case cmd == "approvals" && o.pending && o.status != "" && o.status != "pending":
		return o, usageError(env, "approvals takes --pending or --status, not both")
	case cmd == "approvals" && !slices.Contains([]string{"", "pending", "approved", "denied"}, o.status):
		return o, usageError(env, "--status %q is not one of pending, approved, denied", o.status)
	}
	if o.pending {
		o.status = "pending"
	}
	return o, -1
}

func countSet(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// client calls one server's admin API.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
}

func newClient(o options, env Env) (*client, error) {
	u, err := url.Parse(strings.TrimSuffix(o.server, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("--server %q is not an http(s) URL without query", o.server)
	}
	token := env.Getenv(EnvAdminToken)
	if o.tokenFile != "" {
		b, err := env.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %v", err)
		}
		token = string(b)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		if o.tokenFile != "" {
			return nil, fmt.Errorf("--token-file %s is empty", o.tokenFile)
		}
		return nil, fmt.Errorf("no admin token: pass --token-file or set %s", EnvAdminToken)
	}
	hc := env.HTTPClient
	if o.insecure {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // asked for by the flag, for a pod's loopback
		copied := *hc
		copied.Transport = t
		hc = &copied
	}
	return &client{base: u, token: token, http: hc}, nil
}

// call sends one request and decodes a 200 answer into out; any other answer is an
// error that says what to do about it.
func (c *client) call(ctx context.Context, method, path string, query url.Values, body any, out any) ([]byte, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", u.Redacted(), err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return nil, errors.New("the server refused the admin token (401): check --token-file or " + EnvAdminToken)
	case http.StatusNotFound:
		return nil, fmt.Errorf("no admin API at %s (404): the server has no secrets.adminTokenFile, or --server is not its issuer URL", u.Redacted())
	default:
		var e adminapi.Error
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("the server answered %s: %s: %s", resp.Status, e.Error, e.Description)
		}
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("the server's answer is not what the admin API sends (is --server an mcpauth server?): %v", err)
	}
	return raw, nil
}

func (c *client) grants(ctx context.Context, o options, w io.Writer) error {
	q := url.Values{}
	if o.user != "" {
		q.Set("user", o.user)
	}
	if o.client != "" {
		q.Set("client", o.client)
	}
	var list adminapi.GrantList
	raw, err := c.call(ctx, http.MethodGet, adminapi.PathGrants, q, nil, &list)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(raw)
		return err
	}
	if len(list.Grants) == 0 {
		_, err := fmt.Fprintln(w, "no grants")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GRANT\tUSER\tCLIENT\tSCOPE\tRESOURCE\tLOGGED IN\tEXPIRES")
	for _, g := range list.Grants {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.UserID, g.ClientID, dash(g.Scope),
			dash(strings.Join(g.Resource, ",")), g.AuthTime.UTC().Format(time.RFC3339), g.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

func (c *client) clients(ctx context.Context, o options, w io.Writer) error {
	var list adminapi.ClientList
	raw, err := c.call(ctx, http.MethodGet, adminapi.PathClients, nil, nil, &list)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(raw)
		return err
	}
	if len(list.Clients) == 0 {
		_, err := fmt.Fprintln(w, "no dynamic registrations")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tNAME\tCREATED\tLAST USED\tEXPIRES\tSOURCE\tREDIRECT URIS")
	for _, cl := range list.Clients {
		used := "never"
		if !cl.LastUsedAt.IsZero() {
			used = cl.LastUsedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cl.ID, dash(printable(cl.Name)), cl.CreatedAt.UTC().Format(time.RFC3339),
			used, cl.ExpiresAt.UTC().Format(time.RFC3339), dash(cl.Source), printable(strings.Join(cl.RedirectURIs, ",")))
	}
	return tw.Flush()
}

// printable keeps what a client registered from moving the cursor or breaking the
// table: client names are the registrant's choice.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *client) revoke(ctx context.Context, o options, w io.Writer) error {
	req := adminapi.RevokeRequest{UserID: o.user, ClientID: o.client, All: o.all}
	var res adminapi.RevokeResult
	raw, err := c.call(ctx, http.MethodPost, adminapi.PathRevoke, nil, req, &res)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(raw)
		return err
	}
	what := "of the whole provider"
	switch {
	case o.user != "":
		what = "of user " + o.user
	case o.client != "":
		what = "of client " + o.client
	}
	_, err = fmt.Fprintf(w, "revoked %d %s %s; deleted %d upstream %s\n", res.Revoked, plural(res.Revoked, "grant", "grants"),
		what, res.UpstreamTokensDeleted, plural(res.UpstreamTokensDeleted, "token", "tokens"))
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (c *client) approvals(ctx context.Context, o options, w io.Writer) error {
	q := url.Values{}
	if o.status != "" {
		q.Set("status", o.status)
	}
	var list adminapi.ApprovalList
	raw, err := c.call(ctx, http.MethodGet, adminapi.PathApprovals, q, nil, &list)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(raw)
		return err
	}
	if len(list.Approvals) == 0 {
		what := "no clients in approval mode's records"
		if o.status != "" {
			what = "no " + o.status + " clients"
		}
		_, err := fmt.Fprintln(w, what)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT ID\tSTATUS\tKIND\tNAME\tREDIRECT URIS\tREQUESTED\tDECIDED BY")
	for _, a := range list.Approvals {
		requested := "-"
		if !a.RequestedAt.IsZero() {
			requested = a.RequestedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ClientID, a.Status, dash(a.Kind), dash(a.ClientName),
			dash(strings.Join(a.RedirectURIs, ",")), requested, dash(a.DecidedBy))
	}
	return tw.Flush()
}

func (c *client) decide(ctx context.Context, o options, w io.Writer) error {
	decision := adminapi.DecisionApprove
	if o.cmd == "deny" {
		decision = adminapi.DecisionDeny
	}
	var res adminapi.ApprovalResult
	raw, err := c.call(ctx, http.MethodPost, adminapi.PathApprovals, nil, adminapi.ApprovalRequest{ClientID: o.clientID, Decision: decision}, &res)
	if err != nil {
		return err
	}
	if o.json {
		_, err := w.Write(raw)
		return err
	}
	if decision == adminapi.DecisionApprove {
		_, err = fmt.Fprintf(w, "approved client %s: its logins can complete now\n", o.clientID)
		return err
	}
	_, err = fmt.Fprintf(w, "denied client %s; revoked %d %s\n", o.clientID, res.Revoked, plural(res.Revoked, "grant", "grants"))
	return err
}
