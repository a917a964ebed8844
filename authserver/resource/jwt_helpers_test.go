package resource

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The JWT tests drive an authorization server through four verbs: publish signing
// keys, mint a token, revoke a grant, revoke a token. fakeAS implements them over
// httptest, speaking the issue 9 contracts (GET /oauth/jwks advertised as jwks_uri;
// GET /oauth/revocations?since=<cursor> authenticated like introspection, answering
// {"revocations":[{"gid"|"jti","at"}],"cursor","retention"} with no-store). Pointing
// the tests at the real server is a small change: publish writes the signing keys
// file (config.SigningKeySet), mint asks the token endpoint (or signs with the same
// private key), and the revokes go through the admin API; the assertions stay.

// testKey is a signing key of the test's authorization server.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newKey(t testing.TB, kid string, alg jose.SignatureAlgorithm) *testKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("no test keys for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{kid: kid, alg: alg, priv: priv}
}

func (k *testKey) public() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// publish makes keys the whole published JWKS.
func (as *fakeAS) publish(keys ...*testKey) {
	set := jose.JSONWebKeySet{}
	for _, k := range keys {
		set.Keys = append(set.Keys, k.public())
	}
	as.publishRaw(set)
}

func (as *fakeAS) publishRaw(set jose.JSONWebKeySet) {
	as.mu.Lock()
	as.jwks = set
	as.mu.Unlock()
}

func (as *fakeAS) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	as.jwksFetches.Add(1)
	as.mu.Lock()
	set := as.jwks
	as.mu.Unlock()
	w.Header().Set("Content-Type", "application/jwk-set+json")
	_ = json.NewEncoder(w).Encode(set)
}

func (as *fakeAS) revokeGrant(gid string) { as.addRevocation(map[string]any{"gid": gid}) }
func (as *fakeAS) revokeToken(jti string) { as.addRevocation(map[string]any{"jti": jti}) }

func (as *fakeAS) addRevocation(e map[string]any) {
	e["at"] = time.Now().Unix()
	as.mu.Lock()
	as.revoked = append(as.revoked, e)
	as.mu.Unlock()
}

func (as *fakeAS) setFeedStatus(status int) {
	as.mu.Lock()
	as.feedStatus = status
	as.mu.Unlock()
}

// serveRevocations is the feed: every entry after the cursor, or all without one.
func (as *fakeAS) serveRevocations(w http.ResponseWriter, r *http.Request) {
	as.feedReads.Add(1)
	as.mu.Lock()
	defer as.mu.Unlock()
	since := r.URL.Query().Get("since")
	as.feedSince = append(as.feedSince, since)
	if as.feedStatus != 0 {
		http.Error(w, "broken", as.feedStatus)
		return
	}
	if id, secret, ok := decodeBasic(r.Header.Get("Authorization")); !ok || id != testClientID || secret != testSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	from := 0
	if since != "" {
		var err error
		// Like the real server: a cursor it did not issue is invalid_request.
		if from, err = strconv.Atoi(since); err != nil || from < 0 || from > len(as.revoked) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "since is not a cursor this server issued"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"revocations": append([]map[string]any{}, as.revoked[from:]...),
		"cursor":      strconv.Itoa(len(as.revoked)),
		"retention":   960,
	})
}

// claims are those of a valid access token from as for testResource, changed by edit
// (a nil value deletes a claim).
func (as *fakeAS) claims(now time.Time, edit func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss":       as.issuer,
		"sub":       "user-1",
		"aud":       testResource,
		"client_id": "client-1",
		"scope":     "mcp tools:read",
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(15 * time.Minute).Unix(),
		"jti":       "jti-" + strconv.FormatInt(now.UnixNano(), 36),
		"gid":       "grant-1",
	}
	if edit != nil {
		edit(c)
	}
	for k, val := range c {
		if val == nil {
			delete(c, k)
		}
	}
	return c
}

// mint signs claims with k, with typ at+jwt unless typ says otherwise ("" leaves it out).
func mint(t testing.TB, k *testKey, claims map[string]any, typ ...string) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	if len(typ) == 0 {
		opts = opts.WithType("at+jwt")
	} else if typ[0] != "" {
		opts = opts.WithType(jose.ContentType(typ[0]))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// forge builds a token by hand with the given header and a signature computed with
// HMAC-SHA-256 under secret, or no signature at all when secret is nil: what an
// attacker sends for the "none" and HS256-with-the-public-key attacks.
func forge(t testing.TB, header, claims map[string]any, secret []byte) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	input := enc(header) + "." + enc(claims)
	if secret == nil {
		return input + "."
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}
