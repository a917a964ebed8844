package authserver

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Token kinds, as the prefix of the string handed out (see the package doc).
const (
	prefixCode    = "mcp_ac_"
	prefixAccess  = "mcp_at_"
	prefixRefresh = "mcp_rt_"
	// prefixDevice marks RFC 8628 device codes.
	prefixDevice = "mcp_dc_"
	// prefixSecret marks generated client secrets; they carry no grant ID.
	prefixSecret = "mcp_cs_"
	// prefixClientID marks dynamically registered client IDs.
	prefixClientID = "mcpc_"
	// prefixRegistration marks RFC 7592 registration access tokens, which carry
	// their client's ID: mcp_rat_<client ID>.<random>.
	prefixRegistration = "mcp_rat_"
)

const (
	grantIDBytes  = 16
	secretBytes   = 32
	grantIDLen    = 2 * grantIDBytes // hex
	randomPartLen = 43               // base64url(32 bytes), no padding
)

// randomString returns n bytes from crypto/rand, base64url without padding. crypto/rand
// never fails on supported platforms (it panics instead), so there is no error.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newGrantID returns a fresh grant ID: hex, so it never contains the "_" separator or
// the braces of a Redis hash tag.
func newGrantID() string {
	b := make([]byte, grantIDBytes)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// mintToken returns a new code or token of the given kind for a grant.
func mintToken(prefix, grantID string) string {
	return prefix + grantID + "_" + randomString(secretBytes)
}

// parseToken returns the grant ID embedded in a code or token of the given kind, or
// false when the string is not one we could have issued. Anything that fails here is
// answered exactly like an unknown token, so the format leaks nothing.
func parseToken(prefix, tok string) (grantID string, ok bool) {
	rest, found := strings.CutPrefix(tok, prefix)
	if !found || len(rest) != grantIDLen+1+randomPartLen || rest[grantIDLen] != '_' {
		return "", false
	}
	grantID, random := rest[:grantIDLen], rest[grantIDLen+1:]
	if !isLowerHex(grantID) || !isBase64URL(random) {
		return "", false
	}
	return grantID, true
}

// tokenKind says which kind of token a string is by its prefix ("" when none).
func tokenKind(tok string) string {
	for _, p := range []string{prefixAccess, prefixRefresh, prefixCode} {
		if _, ok := parseToken(p, tok); ok {
			return p
		}
	}
	return ""
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// mintRegistrationToken returns a new registration access token for a client.
func mintRegistrationToken(clientID string) string {
	return prefixRegistration + clientID + "." + randomString(secretBytes)
}

// parseRegistrationToken returns the client ID a registration access token names, or
// false when the string is not one we could have issued. Client IDs are base64url
// after their prefix, so they hold no dot.
func parseRegistrationToken(tok string) (clientID string, ok bool) {
	rest, found := strings.CutPrefix(tok, prefixRegistration)
	if !found {
		return "", false
	}
	clientID, random, found := strings.Cut(rest, ".")
	if !found || len(random) != randomPartLen || !isBase64URL(random) ||
		!strings.HasPrefix(clientID, prefixClientID) || !isBase64URL(clientID) || len(clientID) > 64 {
		return "", false
	}
	return clientID, true
}
