package authserver

import (
	"cmp"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/store"
)

// jwtType is the JWS typ of an access token (RFC 9068 §2.1). A resource server that
// checks it can never be handed an ID token, or any other JWT of ours, as an access
// token.
const jwtType = "at+jwt"

// labelJTI hashes a JWT's jti into the key of its store record: the record of a JWT
// access token is found by its jti, so the token itself (a kilobyte) is never hashed.
const labelJTI = "jti"

// jtiBytes of randomness make a jti: as unguessable as an opaque token's secret part,
// though with a JWT the signature, not the jti, is what makes a token genuine.
const jtiBytes = 32

// maxJWTLen bounds what lookupToken will parse: ours are well under 2 KiB.
const maxJWTLen = 8 << 10

// nbfLeeway accepts a token whose nbf is a little ahead of this replica's clock: it
// was signed by another replica whose clock runs ahead.
const nbfLeeway = time.Minute

// signatureAlgorithms are the only algorithms a token may name (RFC 8725 §3.1: never
// let the token choose, and never "none").
var signatureAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256}

// SigningKeys are the keys that sign JWT access tokens and those published in the
// JWKS, as read from the signing keys file (config.SigningKeySet). Replace swaps them
// while the server runs, so a rotated key is picked up without a restart. Safe for
// concurrent use.
type SigningKeys struct {
	state atomic.Pointer[keyState]
}

// keyState is one generation of keys, with what each needs prepared once.
type keyState struct {
	keys    []config.ParsedSigningKey
	signers map[string]jose.Signer // by kid
	public  map[string]crypto.PublicKey
}

// NewSigningKeys returns a holder for keys (see Replace).
func NewSigningKeys(keys []config.ParsedSigningKey) (*SigningKeys, error) {
	k := &SigningKeys{}
	if err := k.Replace(keys); err != nil {
		return nil, err
	}
	return k, nil
}

// GenerateSigningKeys returns one fresh ES256 key, active from the start. It suits a
// single replica (the memory store): another replica could not verify its tokens, and
// they stop verifying when the process ends.
func GenerateSigningKeys() (*SigningKeys, error) {
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return NewSigningKeys([]config.ParsedSigningKey{{
		SigningKey: config.SigningKey{KeyID: "generated-" + randomString(9), Algorithm: config.SigningES256, ActivateAt: time.Unix(0, 0).UTC()},
		Signer:     pk,
	}})
}

// Replace makes keys the current set. Keys come from config.ParseSigningKeys, which
// has checked each against its algorithm; an empty set is refused.
func (k *SigningKeys) Replace(keys []config.ParsedSigningKey) error {
	if len(keys) == 0 {
		return errors.New("signing keys: no key")
	}
	st := &keyState{keys: keys, signers: map[string]jose.Signer{}, public: map[string]crypto.PublicKey{}}
	for _, key := range keys {
		alg := jose.SignatureAlgorithm(key.Algorithm)
		signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key.Signer, KeyID: key.KeyID}},
			(&jose.SignerOptions{}).WithType(jwtType))
		if err != nil {
			return fmt.Errorf("signing key %q: %w", key.KeyID, err)
		}
		st.signers[key.KeyID] = signer
		st.public[key.KeyID] = key.Signer.Public()
	}
	k.state.Store(st)
	return nil
}

// Active returns the key id and algorithm that sign at now; false when no key is
// active yet.
func (k *SigningKeys) Active(now time.Time) (kid, alg string, ok bool) {
	key, ok := config.ActiveSigningKey(k.state.Load().keys, now)
	return key.KeyID, key.Algorithm, ok
}

// sign signs claims with the key active at now.
func (k *SigningKeys) sign(claims *accessClaims, now time.Time) (string, error) {
	st := k.state.Load()
	key, ok := config.ActiveSigningKey(st.keys, now)
	if !ok {
		return "", errNoActiveKey
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := st.signers[key.KeyID].Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return jws.CompactSerialize()
}

// errNoActiveKey: every key in the file activates later. /readyz reports it.
var errNoActiveKey = errors.New("no signing key is active yet")

// published returns the public key published under kid at now.
func (k *SigningKeys) published(kid, alg string, now time.Time) (crypto.PublicKey, bool) {
	st := k.state.Load()
	for _, key := range st.keys {
		if key.KeyID == kid && key.Algorithm == alg && (key.PublishUntil.IsZero() || now.Before(key.PublishUntil)) {
			return st.public[kid], true
		}
	}
	return nil, false
}

// jwks returns the JSON Web Key Set published at now (RFC 7517 §5).
func (k *SigningKeys) jwks(now time.Time) ([]byte, error) {
	st := k.state.Load()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, key := range config.PublishedSigningKeys(st.keys, now) {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: st.public[key.KeyID], KeyID: key.KeyID, Algorithm: key.Algorithm, Use: "sig"})
	}
	return json.Marshal(set)
}

// accessClaims are the claims of a JWT access token (RFC 9068 §2.2), plus gid, the
// grant the token belongs to, which the revocation feed names.
type accessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  audience `json:"aud"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope,omitempty"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expiry    int64    `json:"exp"`
	JTI       string   `json:"jti"`
	GrantID   string   `json:"gid"`
}

// audience is the aud claim: a string for one audience, an array for several (RFC
// 7519 §4.1.3), as most verifiers expect the single case.
type audience []string

func (a audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(a))
}

// looksLikeJWT says whether tok has the shape of a compact JWS; only such strings are
// parsed as one.
func looksLikeJWT(tok string) bool {
	return len(tok) <= maxJWTLen && strings.Count(tok, ".") == 2 && strings.HasPrefix(tok, "eyJ")
}

// verifyJWT checks a JWT access token of ours without the store: a signature by a
// published key, typ, iss, exp and nbf (RFC 9068 §4). It returns the claims, or false
// for anything we cannot vouch for.
func (s *Server) verifyJWT(tok string) (*accessClaims, bool) {
	if s.signing == nil || !looksLikeJWT(tok) {
		return nil, false
	}
	now := s.now()
	sum := sha256.Sum256([]byte(tok))
	if v, ok := s.verified.get(sum); ok {
		// The signature of these exact bytes was checked with v.pub; what time changes
		// (the key's publication, exp, nbf) is checked again.
		pub, published := s.signing.published(v.kid, v.alg, now)
		if !published || !samePublicKey(pub, v.pub) || !s.timely(v.claims, now) {
			return nil, false
		}
		return v.claims, true
	}
	jws, err := jose.ParseSignedCompact(tok, signatureAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, false
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, jwtType) && !strings.EqualFold(typ, "application/"+jwtType) {
		return nil, false
	}
	pub, ok := s.signing.published(h.KeyID, h.Algorithm, now)
	if !ok {
		return nil, false
	}
	payload, err := jws.Verify(pub)
	if err != nil {
		return nil, false
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, false
	}
	if c.Issuer != s.issuer || c.JTI == "" || c.GrantID == "" || !isLowerHex(c.GrantID) || len(c.GrantID) != grantIDLen ||
		!s.timely(&c, now) {
		return nil, false
	}
	s.verified.put(sum, verifiedJWT{claims: &c, kid: h.KeyID, alg: h.Algorithm, pub: pub})
	return &c, true
}

// timely checks exp and nbf at now.
func (s *Server) timely(c *accessClaims, now time.Time) bool {
	return now.Unix() < c.Expiry && !time.Unix(c.NotBefore, 0).After(now.Add(nbfLeeway))
}

// maxVerifiedJWTs bounds the cache of verified tokens: about 600 bytes each.
const maxVerifiedJWTs = 4096

// verifiedJWTs remembers tokens whose signature and claims were checked, by the
// SHA-256 of the token, so that a token introspected again (an MCP server caching
// briefly, many servers checking one token) costs a hash rather than an ECDSA
// verification, which is most of an introspection's CPU. A hit still checks that
// the key is published and the token timely. When full it is emptied: the cost is a
// few verifications again. The zero value is ready; safe for concurrent use.
type verifiedJWTs struct {
	mu sync.RWMutex
	m  map[[sha256.Size]byte]verifiedJWT
}

type verifiedJWT struct {
	claims   *accessClaims // shared: never modified
	kid, alg string
	pub      crypto.PublicKey // the key the signature verified with
}

// samePublicKey compares keys by value: a rewritten keys file may give a kid other
// key material, and only the key that verified the signature vouches for it.
func samePublicKey(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

func (c *verifiedJWTs) get(sum [sha256.Size]byte) (verifiedJWT, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[sum]
	return v, ok
}

func (c *verifiedJWTs) put(sum [sha256.Size]byte, v verifiedJWT) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxVerifiedJWTs {
		c.m = make(map[[sha256.Size]byte]verifiedJWT, 64)
	}
	c.m[sum] = v
}

// mintJWT signs the access token described by rec and returns it with its jti.
func (s *Server) mintJWT(rec store.Token, now time.Time) (tok, jti string, err error) {
	jti = randomString(jtiBytes)
	aud := audience(rec.Resource)
	if len(aud) == 0 {
		// RFC 9068 §3: with no resource requested, the audience is ours to choose; the
		// issuer says "this server", which no MCP server will accept as itself.
		aud = audience{s.issuer}
	}
	// RFC 9068 §2.2: sub is the resource owner, or the client itself when the token
	// was issued to a client acting on its own behalf (client_credentials).
	subject := cmp.Or(rec.UserID, rec.ClientID)
	c := &accessClaims{
		Issuer: s.issuer, Subject: subject, Audience: aud, ClientID: rec.ClientID, Scope: rec.Scope,
		IssuedAt: now.Unix(), NotBefore: now.Unix(), Expiry: rec.ExpiresAt.Unix(), JTI: jti, GrantID: rec.GrantID,
	}
	tok, err = s.signing.sign(c, now)
	return tok, jti, err
}
