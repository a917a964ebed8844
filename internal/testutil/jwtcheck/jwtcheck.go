// Package jwtcheck verifies mcpauth's JWT access tokens in tests the way a resource
// server written by someone else would: the JWKS decoded by hand with the standard
// library, the token checked by github.com/golang-jwt/jwt/v5. The server signs with
// go-jose; a test that verified with go-jose too could not catch a token that only
// go-jose accepts.
//
//	keys, err := jwtcheck.ParseJWKS(body)
//	claims, err := jwtcheck.Verify(keys, token, time.Now())
package jwtcheck

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwk is one key of an RFC 7517 §5 set, as a verifier reads it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
	D   string `json:"d"`
	P   string `json:"p"`
}

// ParseJWKS decodes a JWKS into public keys by kid. It refuses a set that publishes
// a private key, a key without kid or use "sig", and any key but EC P-256 for ES256
// and RSA for RS256.
func ParseJWKS(body []byte) (map[string]crypto.PublicKey, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("JWKS: %w", err)
	}
	out := map[string]crypto.PublicKey{}
	for _, k := range set.Keys {
		pub, err := k.public()
		if err != nil {
			return nil, fmt.Errorf("JWK %q: %w", k.Kid, err)
		}
		out[k.Kid] = pub
	}
	return out, nil
}

func (k jwk) public() (crypto.PublicKey, error) {
	switch {
	case k.D != "" || k.P != "":
		return nil, errors.New("publishes a private key")
	case k.Kid == "" || k.Use != "sig":
		return nil, fmt.Errorf("kid %q, use %q: want a kid and use sig", k.Kid, k.Use)
	case k.Kty == "EC" && k.Crv == "P-256" && k.Alg == "ES256":
		x, err := b64(k.X, 32)
		if err != nil {
			return nil, err
		}
		y, err := b64(k.Y, 32)
		if err != nil {
			return nil, err
		}
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
	case k.Kty == "RSA" && k.Alg == "RS256":
		n, err := b64(k.N, 0)
		if err != nil {
			return nil, err
		}
		e, err := b64(k.E, 0)
		if err != nil {
			return nil, err
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	}
	return nil, fmt.Errorf("kty %q crv %q alg %q is not ES256 or RS256", k.Kty, k.Crv, k.Alg)
}

// b64 decodes a base64url member; size > 0 requires that many bytes (RFC 7518 §6.2.1.2).
func b64(s string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if size > 0 && len(b) != size {
		return nil, fmt.Errorf("member is %d bytes, want %d", len(b), size)
	}
	return b, nil
}

// Verify checks tok as RFC 9068 §4 asks of a resource server, at time at: typ
// at+jwt, a signature by the key its kid names, alg ES256 or RS256, exp (required),
// nbf and iat. It returns the claims.
func Verify(keys map[string]crypto.PublicKey, tok string, at time.Time) (jwt.MapClaims, error) {
	claims := jwt.MapClaims{}
	parsed, err := jwt.ParseWithClaims(tok, claims, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != "at+jwt" {
			return nil, fmt.Errorf("typ %v, want at+jwt", t.Header["typ"])
		}
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, fmt.Errorf("no published key %q", kid)
	}, jwt.WithValidMethods([]string{"ES256", "RS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return at }))
	if err != nil {
		return nil, err
	}
	if !parsed.Valid {
		return nil, errors.New("token is not valid")
	}
	return claims, nil
}
