package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// maxResponseBytes caps every upstream response body. Discovery documents, JWKS, token
// responses and user info are all a few KiB; a larger answer is broken or hostile, and
// go-oidc reads discovery and JWKS bodies with an unbounded io.ReadAll.
const maxResponseBytes = 1 << 20

// errResponseTooLarge is what reading a body past maxResponseBytes returns.
var errResponseTooLarge = fmt.Errorf("upstream response larger than %d bytes", maxResponseBytes)

// boundedClient returns a copy of c (or of a default client with a timeout) whose
// responses are capped at maxResponseBytes. Copying keeps the caller's client as is.
func boundedClient(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Timeout: defaultTimeout, Transport: defaultTransport()}
	}
	cp := *c
	base := cp.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cp.Transport = limitTransport{base: base}
	return &cp
}

// maxIdleUpstreamConns is how many idle connections to the upstream provider are kept
// for reuse. http.DefaultTransport keeps 2 per host, but every login's code exchange and
// user-info call go to the same one or two hosts: past two logins at once, each call
// opened (and, over https, handshook) a connection and closed it afterwards, which
// under load cost more than the call and piled up TIME_WAIT sockets. 32 covers the
// calls a replica has in flight at 64 logins at once (make bench); an idle connection
// holds two goroutines and its buffers, so not more.
const maxIdleUpstreamConns = 32

// defaultTransport is http.DefaultTransport keeping maxIdleUpstreamConns per host.
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = maxIdleUpstreamConns
	t.MaxIdleConnsPerHost = maxIdleUpstreamConns
	return t
}

type limitTransport struct{ base http.RoundTripper }

func (t limitTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err == nil && resp.Body != nil {
		resp.Body = &limitedBody{rc: resp.Body, left: maxResponseBytes}
	}
	return resp, err
}

// limitedBody fails, rather than silently truncating, once more than left bytes come:
// a truncated JSON document would give a misleading parse error.
type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errResponseTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// fetch calls a user-info style endpoint with the access token as a bearer token and
// returns the body of a 2xx JSON answer. status is the HTTP status when one came back,
// so callers can tell "forbidden" from "unreachable".
func fetch(ctx context.Context, c *http.Client, method, url, accessToken string) (body []byte, status int, err error) {
	body, _, status, err = fetchWithHeader(ctx, c, method, url, accessToken)
	return body, status, err
}

// fetchWithHeader is fetch that also returns the response's header (empty when no
// response came), for pagination links and rate-limit headers.
func fetchWithHeader(ctx context.Context, c *http.Client, method, url, accessToken string) ([]byte, http.Header, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, http.Header{}, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	// Some APIs (GitHub's) refuse requests without a User-Agent.
	req.Header.Set("User-Agent", "mcpauth")
	resp, err := c.Do(req)
	if err != nil {
		return nil, http.Header{}, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.Header, resp.StatusCode, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.Header, resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, snippet(body))
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/jwt" {
		return nil, resp.Header, resp.StatusCode, fmt.Errorf("%s %s: signed (application/jwt) user info is not supported", method, url)
	}
	return body, resp.Header, resp.StatusCode, nil
}

// snippet is the start of an error body, enough to diagnose without flooding logs.
func snippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// decodeJSON decodes one JSON value, keeping numbers as json.Number so that large
// integer ids (GitHub's, say) keep every digit.
func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("decode JSON: trailing data after the value")
	}
	return nil
}

// decodeClaims decodes a user-info answer, refusing the error objects some APIs send
// with HTTP 200 (Slack's {"ok":false,"error":"invalid_auth"}).
func decodeClaims(body []byte) (map[string]any, error) {
	var claims map[string]any
	if err := decodeJSON(body, &claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("user info is not a JSON object")
	}
	if e, ok := claims["error"].(string); ok && e != "" {
		return nil, fmt.Errorf("user info answered error %q", e)
	}
	if ok, present := claims["ok"].(bool); present && !ok {
		return nil, errors.New("user info answered ok=false")
	}
	return claims, nil
}

// claimMapping says which claims make up an Identity.
type claimMapping struct {
	subject string
	email   string
	// names are tried in order; the first non-empty string wins.
	names  []string
	groups string
}

// identityFrom builds an Identity from decoded claims. Only the subject is mandatory.
func identityFrom(claims map[string]any, m claimMapping) (*Identity, error) {
	v, ok := lookupClaim(claims, m.subject)
	if !ok {
		return nil, fmt.Errorf("no %q claim to identify the user", m.subject)
	}
	sub, ok := claimString(v)
	if !ok || sub == "" {
		return nil, fmt.Errorf("claim %q (%v) is not a usable user id", m.subject, v)
	}
	// An address the upstream says it has not verified must not become an identity
	// anyone can match on (a login rule by domain, say); it stays in Claims. Used as
	// the user id it would let anyone claim another user's account.
	unverified := explicitlyFalse(claims["email_verified"])
	if unverified && m.subject == m.email {
		return nil, fmt.Errorf("claim %q is the user id but the upstream says it is unverified", m.subject)
	}
	id := &Identity{Subject: sub, Claims: claims}
	if e, ok := stringClaim(claims, m.email); ok && !unverified {
		id.Email = e
	}
	for _, n := range m.names {
		if s, ok := stringClaim(claims, n); ok && s != "" {
			id.Name = s
			break
		}
	}
	if m.groups != "" {
		id.Groups = stringsClaim(claims, m.groups)
	}
	return id, nil
}

// lookupClaim finds path in claims: first as a literal key (claim names such as
// "https://example.com/groups" contain dots), then as a dotted path into nested objects.
func lookupClaim(claims map[string]any, path string) (any, bool) {
	if path == "" {
		return nil, false
	}
	if v, ok := claims[path]; ok {
		return v, v != nil
	}
	var cur any = claims
	for seg := range strings.SplitSeq(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[seg]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// claimString renders an id-like claim: strings as they are, numbers in decimal
// (never 1.2e+07), anything else refused.
func claimString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		s := x.String()
		if !strings.ContainsAny(s, ".eE") {
			return s, true
		}
		f, err := x.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return "", false
		}
		return strconv.FormatFloat(f, 'f', -1, 64), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return "", false
}

func stringClaim(claims map[string]any, path string) (string, bool) {
	v, ok := lookupClaim(claims, path)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	return s, ok && s != ""
}

// stringsClaim reads a list of strings, accepting a lone string as a list of one.
func stringsClaim(claims map[string]any, path string) []string {
	v, _ := lookupClaim(claims, path)
	switch x := v.(type) {
	case string:
		if x != "" {
			return []string{x}
		}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// explicitlyFalse is true for false and "false" (some providers send strings).
func explicitlyFalse(v any) bool {
	switch x := v.(type) {
	case bool:
		return !x
	case string:
		return strings.EqualFold(x, "false")
	}
	return false
}
