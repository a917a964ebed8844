package resource

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// ErrUnavailable is returned (wrapped) when the authorization server cannot answer:
// it is unreachable, answers with an error status or garbage, or refuses this
// resource server's credentials. Middleware turns it into 503, not 401: the token may
// well be valid, and a 401 would send the client through a pointless new login.
var ErrUnavailable = errors.New("authorization server unavailable")

// maxMetadataBytes bounds what is read from the authorization server.
const maxMetadataBytes = 1 << 20

// introspection is an RFC 7662 §2.2 response, plus mcpauth's upstream token fields.
type introspection struct {
	Active    bool        `json:"active"`
	Scope     string      `json:"scope"`
	ClientID  string      `json:"client_id"`
	Subject   string      `json:"sub"`
	Audience  audience    `json:"aud"`
	ExpiresAt numericDate `json:"exp"`
	IssuedAt  numericDate `json:"iat"`
	NotBefore numericDate `json:"nbf"`
	Issuer    string      `json:"iss"`
	TokenType string      `json:"token_type"`
	TokenID   string      `json:"jti"`
	GrantID   string      `json:"gid"`

	UpstreamAccessToken    string      `json:"upstream_access_token"`
	UpstreamTokenExpiresAt numericDate `json:"upstream_token_expires_at"`
	UpstreamProvider       string      `json:"upstream_provider"`

	// fetched is when the answer was received, for callers that accept only a
	// recent one (verifyIntrospectedWithin).
	fetched time.Time
}

// audience is the "aud" member: RFC 7662 §2.2 (after RFC 7519 §4.1.3) allows a single
// string or an array of strings.
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("aud must be a string or an array of strings: %w", err)
	}
	*a = many
	return nil
}

// numericDate is a time in seconds since the epoch (RFC 7519 §2), integer or not.
type numericDate struct{ time.Time }

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("a date must be a number of seconds: %w", err)
	}
	if math.IsNaN(f) || f < 0 || f > 1<<40 {
		return fmt.Errorf("date %v is out of range", f)
	}
	sec, frac := math.Modf(f)
	d.Time = time.Unix(int64(sec), int64(frac*1e9))
	return nil
}

// introspector calls the authorization server's introspection endpoint, discovering
// it first when it was not configured.
type introspector struct {
	cfg  *Config
	disc *discovery
}

// introspect asks the authorization server about token. Every failure wraps
// ErrUnavailable; an inactive token is not a failure.
func (in *introspector) introspect(ctx context.Context, token string) (*introspection, error) {
	endpoint, err := in.introspectionEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, in.cfg.IntrospectionTimeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	setClientAuth(req, in.cfg)

	var out introspection
	if err := doJSON(in.cfg.HTTPClient, req, &out); err != nil {
		return nil, fmt.Errorf("%w: introspection at %s: %v", ErrUnavailable, endpoint, err)
	}
	return &out, nil
}

// setClientAuth authenticates this resource server as a confidential client, as
// introspection and the revocation feed both require. RFC 6749 §2.3.1: "The client
// identifier is encoded using the application/x-www-form-urlencoded encoding
// algorithm ... and the encoded value is used as the username; the client password
// is encoded using the same algorithm and used as the password."
func setClientAuth(req *http.Request, cfg *Config) {
	req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
}

// introspectionEndpoint returns the configured endpoint or the one the first
// authorization server's RFC 8414 metadata names.
func (in *introspector) introspectionEndpoint(ctx context.Context) (string, error) {
	if in.cfg.IntrospectionEndpoint != "" {
		return in.cfg.IntrospectionEndpoint, nil
	}
	meta, err := in.disc.get(ctx)
	if err != nil {
		return "", err
	}
	if meta.IntrospectionEndpoint == "" {
		return "", fmt.Errorf("%w: authorization server %s advertises no usable introspection_endpoint", ErrUnavailable, meta.Issuer)
	}
	return meta.IntrospectionEndpoint, nil
}

// asMetadata is what this package reads of RFC 8414 authorization server metadata.
type asMetadata struct {
	Issuer                string `json:"issuer"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

// discovery reads the first authorization server's metadata once and remembers it.
// A failed discovery is not remembered: the next request tries again.
type discovery struct {
	cfg *Config

	mu   sync.Mutex // held across the request, so concurrent first requests discover once
	meta *asMetadata
}

// get returns the metadata, discovering it on first use. Failures wrap ErrUnavailable.
func (d *discovery) get(ctx context.Context) (*asMetadata, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.meta != nil {
		return d.meta, nil
	}
	meta, err := d.discover(ctx, d.cfg.AuthorizationServers[0])
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	d.meta = meta
	return meta, nil
}

// discover reads RFC 8414 metadata. Endpoints that are not http(s) URLs are dropped,
// so the caller reports them missing.
func (d *discovery) discover(ctx context.Context, issuer string) (*asMetadata, error) {
	metaURL, err := metadataURL(issuer)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.IntrospectionTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metaURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	var meta asMetadata
	if err := doJSON(d.cfg.HTTPClient, req, &meta); err != nil {
		return nil, fmt.Errorf("authorization server metadata at %s: %v", metaURL, err)
	}
	// RFC 8414 §3.3: "The "issuer" value returned MUST be identical to the
	// authorization server's issuer identifier value into which the well-known URI
	// string was inserted to create the URL used to retrieve the metadata. If these
	// values are not identical, the data contained in the response MUST NOT be used."
	if meta.Issuer != issuer {
		return nil, fmt.Errorf("authorization server metadata at %s names issuer %q, not %q", metaURL, meta.Issuer, issuer)
	}
	for _, ep := range []*string{&meta.IntrospectionEndpoint, &meta.JWKSURI} {
		if u, err := url.Parse(*ep); err != nil || !isHTTP(u) {
			*ep = ""
		}
	}
	return &meta, nil
}

// metadataURL is RFC 8414 §3.1: the well-known suffix goes between the host and the
// issuer's path ("any terminating "/" following the host component" removed first).
func metadataURL(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || !isHTTP(u) {
		return "", fmt.Errorf("issuer %q is not an http(s) URL", issuer)
	}
	u.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// doJSON sends req and decodes a 200 JSON answer of at most maxMetadataBytes into out.
func doJSON(client *http.Client, req *http.Request, out any) error {
	return doJSONLimit(client, req, out, maxMetadataBytes)
}

// doJSONLimit is doJSON with another bound on the answer.
func doJSONLimit(client *http.Client, req *http.Request, out any, limit int) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return err
	}
	if len(body) > limit {
		return errors.New("answer too large")
	}
	if resp.StatusCode != http.StatusOK {
		return &statusError{status: resp.StatusCode, body: snippet(body)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("malformed JSON: %v", err)
	}
	return nil
}

// statusError is an answer other than 200.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	if e.status == http.StatusUnauthorized {
		// Our own credentials were refused: every token will fail until the
		// configuration is fixed, so say so plainly.
		return fmt.Sprintf("status 401: the authorization server refused this resource server's client credentials (%s)", e.body)
	}
	return fmt.Sprintf("status %d (%s)", e.status, e.body)
}

// snippet is the start of an error body, for logs.
func snippet(b []byte) string {
	const n = 200
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
