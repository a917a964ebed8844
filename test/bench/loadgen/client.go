package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// gen sends the requests. One HTTP transport with keep-alive connections serves every
// worker, as a pool of real clients behind one address would.
type gen struct {
	client   *http.Client
	server   string // our server's base URL (the issuer)
	upstream string // the fast upstream's base URL
	// introspectAuth is the Basic credentials of the MCP server that introspects.
	introspectAuth string
	users          atomic.Int64
	// sourceIPs hands out loopback source addresses for registrations (see regClient).
	sourceIPs atomic.Uint32
}

const (
	redirectURI = "http://127.0.0.1/callback"
	resource    = "https://mcp.bench.example/"
	// registrationsPerAddress stays under the server's per-address registration burst
	// (30) and its limit of live registrations per address (20); see regClient.
	registrationsPerAddress = 15
)

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

func newGen(server, upstream, introspectID, introspectSecret string) *gen {
	g := &gen{
		client:         &http.Client{Transport: newTransport(), CheckRedirect: noRedirects, Timeout: 30 * time.Second},
		server:         server,
		upstream:       upstream,
		introspectAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(introspectID)+":"+url.QueryEscape(introspectSecret))),
	}
	g.sourceIPs.Store(1 << 16) // 127.1.0.0 onwards: never 127.0.0.1, which the rest uses
	return g
}

// worker is one concurrent client. Each has its own registration client: the server
// rate-limits registrations per client address (30 at once, then one every 2 s) and
// bounds each address's live registrations (20), as it should, and a benchmark registering hundreds of clients a second from one
// address would only measure 429s. Real registrations come from as many addresses as
// there are installs; the worker stands in for them by moving to a fresh loopback
// source address (Linux routes all of 127/8 to lo) every registrationsPerAddress
// registrations, reusing its keep-alive connection in between.
type worker struct {
	g         *gen
	id        int
	regClient *http.Client
	regCount  int
}

func (g *gen) newWorker(id int) *worker { return &worker{g: g, id: id} }

func (w *worker) registrationClient() *http.Client {
	if w.regClient != nil && w.regCount < registrationsPerAddress {
		w.regCount++
		return w.regClient
	}
	if w.regClient != nil {
		w.regClient.Transport.(*http.Transport).CloseIdleConnections()
	}
	n := w.g.sourceIPs.Add(1)
	for n&0xff == 0 || n&0xff == 0xff {
		n = w.g.sourceIPs.Add(1)
	}
	ip := net.IPv4(127, byte(n>>16), byte(n>>8), byte(n))
	t := newTransport()
	t.DialContext = (&net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}).DialContext
	w.regClient = &http.Client{Transport: t, CheckRedirect: noRedirects, Timeout: 30 * time.Second}
	w.regCount = 1
	return w.regClient
}

// grant is what a login leaves a client with.
type grant struct {
	clientID string
	access   string
	refresh  string
}

// exchange sends req and reads the whole answer; a status other than want is an error.
func exchange(c *http.Client, req *http.Request, want int) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode != want {
		s := string(body)
		if len(s) > 300 {
			s = s[:300]
		}
		return nil, nil, fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, want, strings.TrimSpace(s))
	}
	return resp, body, nil
}

func postForm(u, form string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

func randomB64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

const registrationBody = `{"redirect_uris":["` + redirectURI + `"],"token_endpoint_auth_method":"none",` +
	`"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"client_name":"loadgen","application_type":"native"}`

// flow is one whole login of a newly registered public client, as an MCP client does
// it: register (RFC 7591), authorize (our consent page), approve, the upstream's
// redirect back to our callback, and the code exchange. Five requests to our server,
// each recorded. after, when set, runs after each step (the round-trip accounting).
func (w *worker) flow(rec *recorder, after func(kind)) (grant, error) {
	g := w.g
	step := func(k kind, start time.Time, err error) error {
		rec.observe(k, start, err)
		if err == nil && after != nil {
			after(k)
		}
		return err
	}

	// 1. Registration.
	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, g.server+"/oauth/register", strings.NewReader(registrationBody))
	req.Header.Set("Content-Type", "application/json")
	_, body, err := exchange(w.registrationClient(), req, http.StatusCreated)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if err == nil {
		if err = json.Unmarshal(body, &reg); err == nil && reg.ClientID == "" {
			err = errors.New("register: no client_id")
		}
	}
	if err := step(kRegister, start, err); err != nil {
		return grant{}, err
	}

	// 2. Authorization request: an untrusted client gets the consent page.
	verifier := randomB64(32)
	sum := sha256.Sum256([]byte(verifier))
	state := randomB64(12)
	params := "client_id=" + url.QueryEscape(reg.ClientID) +
		"&code_challenge=" + base64.RawURLEncoding.EncodeToString(sum[:]) +
		"&code_challenge_method=S256&redirect_uri=" + url.QueryEscape(redirectURI) +
		"&resource=" + url.QueryEscape(resource) + "&response_type=code&scope=mcp&state=" + state
	start = time.Now()
	req, _ = http.NewRequest(http.MethodGet, g.server+"/oauth/authorize?"+params, nil)
	resp, body, err := exchange(g.client, req, http.StatusOK)
	var flowCookie, csrf string
	if err == nil {
		for _, c := range resp.Cookies() {
			if strings.HasSuffix(c.Name, "mcpauth_flow") {
				flowCookie = c.Name + "=" + c.Value
			}
		}
		csrf = between(body, `name="csrf_token" value="`, `"`)
		if flowCookie == "" || csrf == "" {
			err = errors.New("authorize: no consent page (flow cookie or CSRF token missing)")
		}
	}
	if err := step(kAuthorize, start, err); err != nil {
		return grant{}, err
	}

	// 3. The user approves; we are sent to the upstream.
	start = time.Now()
	req = postForm(g.server+"/oauth/consent", params+"&decision=approve&csrf_token="+url.QueryEscape(csrf))
	req.Header.Set("Cookie", flowCookie)
	resp, _, err = exchange(g.client, req, http.StatusFound)
	var upState string
	if err == nil {
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, g.upstream+"/authorize?") {
			err = fmt.Errorf("consent: redirected to %q, not the upstream", loc)
		} else if u, perr := url.Parse(loc); perr != nil {
			err = perr
		} else if upState = u.Query().Get("state"); upState == "" {
			err = errors.New("consent: no upstream state")
		}
	}
	if err := step(kConsent, start, err); err != nil {
		return grant{}, err
	}

	// 4. The upstream logs the user in and sends them back to our callback; the server
	// exchanges the upstream code and reads user info from the fast upstream.
	user := "u" + strconv.FormatInt(g.users.Add(1)%100000, 10)
	start = time.Now()
	req, _ = http.NewRequest(http.MethodGet, g.server+"/oauth/callback?code="+upstreamCodePrefix+user+"&state="+url.QueryEscape(upState), nil)
	req.Header.Set("Cookie", flowCookie)
	resp, _, err = exchange(g.client, req, http.StatusFound)
	var code string
	if err == nil {
		loc := resp.Header.Get("Location")
		u, perr := url.Parse(loc)
		switch {
		case perr != nil:
			err = perr
		case !strings.HasPrefix(loc, redirectURI+"?"):
			err = fmt.Errorf("callback: redirected to %q", loc)
		case u.Query().Get("error") != "":
			err = fmt.Errorf("callback: %s: %s", u.Query().Get("error"), u.Query().Get("error_description"))
		case u.Query().Get("state") != state:
			err = errors.New("callback: state not returned")
		default:
			code = u.Query().Get("code")
		}
	}
	if err := step(kCallback, start, err); err != nil {
		return grant{}, err
	}

	// 5. Code exchange.
	start = time.Now()
	req = postForm(g.server+"/oauth/token", "grant_type=authorization_code&code="+url.QueryEscape(code)+
		"&redirect_uri="+url.QueryEscape(redirectURI)+"&client_id="+url.QueryEscape(reg.ClientID)+"&code_verifier="+verifier)
	_, body, err = exchange(g.client, req, http.StatusOK)
	gr := grant{clientID: reg.ClientID}
	if err == nil {
		gr.access, gr.refresh, err = tokens(body)
	}
	if err := step(kTokenCode, start, err); err != nil {
		return grant{}, err
	}
	return gr, nil
}

func tokens(body []byte) (access, refresh string, err error) {
	var t struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &t); err != nil {
		return "", "", err
	}
	if t.AccessToken == "" || t.RefreshToken == "" {
		return "", "", errors.New("token: access or refresh token missing")
	}
	return t.AccessToken, t.RefreshToken, nil
}

// between returns what lies between the first before and the next after in b.
func between(b []byte, before, after string) string {
	i := bytes.Index(b, []byte(before))
	if i < 0 {
		return ""
	}
	rest := b[i+len(before):]
	j := bytes.Index(rest, []byte(after))
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// refresh rotates gr's refresh token once.
func (w *worker) refresh(rec *recorder, gr *grant) error {
	start := time.Now()
	req := postForm(w.g.server+"/oauth/token", "grant_type=refresh_token&refresh_token="+url.QueryEscape(gr.refresh)+"&client_id="+url.QueryEscape(gr.clientID))
	_, body, err := exchange(w.g.client, req, http.StatusOK)
	if err == nil {
		var access, refresh string
		if access, refresh, err = tokens(body); err == nil {
			gr.access, gr.refresh = access, refresh
		}
	}
	rec.observe(kTokenRefresh, start, err)
	return err
}

var activeTrue = []byte(`"active":true`)

// introspect asks about an access token as an MCP server does; baseline servers get
// exactly the same request.
func (w *worker) introspect(rec *recorder, base, token string, k kind) error {
	start := time.Now()
	req := postForm(base+"/oauth/introspect", "token="+url.QueryEscape(token))
	req.Header.Set("Authorization", w.g.introspectAuth)
	_, body, err := exchange(w.g.client, req, http.StatusOK)
	if err == nil && k == kIntrospect && !bytes.Contains(body, activeTrue) {
		err = fmt.Errorf("introspect: token not active: %s", body)
	}
	rec.observe(k, start, err)
	return err
}

// serverCounters reads what the server counted of its Redis traffic from /metrics:
// round trips (a command alone or a pipeline) and commands. ok is false when the
// server does not export them.
func (g *gen) serverCounters(ctx context.Context) (roundTrips, commands float64, ok bool) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, g.server+"/metrics", nil)
	resp, body, err := exchange(g.client, req, http.StatusOK)
	_ = resp
	if err != nil {
		return 0, 0, false
	}
	var n int
	for _, l := range strings.Split(string(body), "\n") {
		if v, found := strings.CutPrefix(l, "mcpauth_redis_round_trips_total "); found {
			roundTrips, _ = strconv.ParseFloat(v, 64)
			n++
		}
		if v, found := strings.CutPrefix(l, "mcpauth_redis_commands_total "); found {
			commands, _ = strconv.ParseFloat(v, 64)
			n++
		}
	}
	return roundTrips, commands, n == 2
}
