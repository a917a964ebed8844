package config

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Signing algorithms of JWT access tokens. ES256 is the default: an ECDSA P-256
// signature costs tens of microseconds where an RSA one costs milliseconds.
const (
	SigningES256 = "ES256"
	SigningRS256 = "RS256"
)

// SigningKeySet is the signing keys file (secrets.signingKeysFile): the keys that sign
// JWT access tokens and those still published so that tokens they signed verify. The
// operator writes it; the server only reads it.
//
//	{"keys":[{"kid":"…","alg":"ES256","privateKey":"-----BEGIN PRIVATE KEY-----…",
//	          "activateAt":"2026-11-24T08:00:00Z","publishUntil":"…"}]}
//
// A key is published (in the JWKS) from the moment it is in the file until its
// PublishUntil, and signs from its ActivateAt until a later key activates. Rotation
// adds a key whose ActivateAt lies at least one access-token lifetime ahead, so every
// verifier has seen it before the first token it signs, and sets the old key's
// PublishUntil past the expiry of the last token the old key signed.
type SigningKeySet struct {
	Keys []SigningKey `json:"keys"`
}

// SigningKey is one key of a SigningKeySet.
type SigningKey struct {
	// KeyID is the JWS kid.
	KeyID string `json:"kid"`
	// Algorithm is ES256 (an ECDSA P-256 key) or RS256 (an RSA key of at least 2048 bits).
	Algorithm string `json:"alg"`
	// PrivateKey is the PKCS #8 PEM of the private key.
	PrivateKey string `json:"privateKey"`
	// ActivateAt is when the key starts signing.
	ActivateAt time.Time `json:"activateAt"`
	// PublishUntil, when set, is when the key leaves the JWKS.
	PublishUntil time.Time `json:"publishUntil,omitzero"`
}

// NewSigningKey generates a key of algorithm under kid: ECDSA P-256 for ES256, RSA
// 2048 for RS256, as the PKCS #8 PEM the file holds, signing from activateAt.
func NewSigningKey(kid, algorithm string, activateAt time.Time) (SigningKey, error) {
	var (
		key crypto.Signer
		err error
	)
	switch algorithm {
	case SigningES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case SigningRS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return SigningKey{}, fmt.Errorf("signing key algorithm %q is not one of ES256, RS256", algorithm)
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("generate %s signing key: %w", algorithm, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return SigningKey{}, fmt.Errorf("encode %s signing key: %w", algorithm, err)
	}
	return SigningKey{
		KeyID:      kid,
		Algorithm:  algorithm,
		PrivateKey: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		ActivateAt: activateAt,
	}, nil
}

// ParsedSigningKey is a SigningKey with its private key decoded.
type ParsedSigningKey struct {
	SigningKey
	Signer crypto.Signer
}

// ParseSigningKeys reads and checks a signing keys file: every key decodes, matches
// its algorithm, and has a unique, non-empty kid.
func ParseSigningKeys(data []byte) ([]ParsedSigningKey, error) {
	var set SigningKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("signing keys: the file holds no key")
	}
	out := make([]ParsedSigningKey, 0, len(set.Keys))
	seen := map[string]bool{}
	for i, k := range set.Keys {
		if k.KeyID == "" {
			return nil, fmt.Errorf("signing keys: keys[%d]: kid is empty", i)
		}
		if seen[k.KeyID] {
			return nil, fmt.Errorf("signing keys: keys[%d]: kid %q appears twice", i, k.KeyID)
		}
		seen[k.KeyID] = true
		if k.ActivateAt.IsZero() {
			return nil, fmt.Errorf("signing keys: key %q: activateAt is missing", k.KeyID)
		}
		signer, err := parseSigningKey(k)
		if err != nil {
			return nil, fmt.Errorf("signing keys: key %q: %w", k.KeyID, err)
		}
		out = append(out, ParsedSigningKey{SigningKey: k, Signer: signer})
	}
	return out, nil
}

func parseSigningKey(k SigningKey) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(k.PrivateKey))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("privateKey is not a PKCS #8 PEM block (PRIVATE KEY)")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("privateKey: %w", err)
	}
	switch k.Algorithm {
	case SigningES256:
		ec, ok := key.(*ecdsa.PrivateKey)
		if !ok || ec.Curve != elliptic.P256() {
			return nil, errors.New("alg ES256 needs an ECDSA P-256 key")
		}
		return ec, nil
	case SigningRS256:
		r, ok := key.(*rsa.PrivateKey)
		if !ok || r.N.BitLen() < 2048 {
			return nil, errors.New("alg RS256 needs an RSA key of at least 2048 bits")
		}
		return r, nil
	default:
		return nil, fmt.Errorf("alg %q is not one of ES256, RS256", k.Algorithm)
	}
}

// ActiveSigningKey returns the key that signs at now: of the keys already active, the
// one activated last. false when no key is active yet.
func ActiveSigningKey(keys []ParsedSigningKey, now time.Time) (ParsedSigningKey, bool) {
	var best ParsedSigningKey
	found := false
	for _, k := range keys {
		if k.ActivateAt.After(now) {
			continue
		}
		if !found || k.ActivateAt.After(best.ActivateAt) {
			best, found = k, true
		}
	}
	return best, found
}

// PublishedSigningKeys returns the keys that belong in the JWKS at now, in file order:
// every key whose PublishUntil is unset or later than now, not-yet-active ones included.
func PublishedSigningKeys(keys []ParsedSigningKey, now time.Time) []ParsedSigningKey {
	return slices.DeleteFunc(slices.Clone(keys), func(k ParsedSigningKey) bool {
		return !k.PublishUntil.IsZero() && !now.Before(k.PublishUntil)
	})
}
