package authserver

import (
	"bytes"
	"strings"
	"testing"
)

func TestDerivedKeysAreStableAndSeparate(t *testing.T) {
	a, _ := deriveKeys(testKey)
	b, _ := deriveKeys(testKey)
	other, _ := deriveKeys(bytes.Repeat([]byte{7}, 32))
	if a.hash(labelToken, "x") != b.hash(labelToken, "x") {
		t.Error("two replicas with one master key hash differently")
	}
	if a.hash(labelToken, "x") == other.hash(labelToken, "x") {
		t.Error("different master keys hash alike")
	}
	if a.hash(labelToken, "x") == a.hash(labelState, "x") {
		t.Error("labels do not separate hashes")
	}
	if bytes.Equal(a.token, a.cookie) {
		t.Error("one key serves two purposes")
	}
	if _, err := deriveKeys([]byte("short")); err == nil {
		t.Error("a short master key was accepted")
	}
}

func TestSealedUpstreamTokensOpenOnlyUnderTheirUserAndKey(t *testing.T) {
	k, _ := deriveKeys(testKey)
	other, _ := deriveKeys(bytes.Repeat([]byte{7}, 32))
	plain := []byte(`{"access_token":"secret-upstream-token"}`)
	sealed, err := k.seal(plain, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret-upstream-token")) {
		t.Fatal("ciphertext contains the plaintext")
	}
	again, _ := k.seal(plain, "alice")
	if bytes.Equal(sealed, again) {
		t.Error("two seals of one plaintext are equal: the nonce is not random")
	}
	if got, err := k.open(sealed, "alice"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %q, %v", got, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	tests := []struct {
		name string
		run  func() ([]byte, error)
	}{
		{"under another user's key", func() ([]byte, error) { return k.open(sealed, "mallory") }},
		{"with another master key", func() ([]byte, error) { return other.open(sealed, "alice") }},
		{"after tampering", func() ([]byte, error) { return k.open(tampered, "alice") }},
		{"truncated", func() ([]byte, error) { return k.open(sealed[:10], "alice") }},
		{"with an unknown version", func() ([]byte, error) { return k.open(append([]byte{9}, sealed[1:]...), "alice") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.run(); err == nil {
				t.Error("opened")
			}
		})
	}
}

func TestTokenFormat(t *testing.T) {
	gid := newGrantID()
	tok := mintToken(prefixAccess, gid)
	if got, ok := parseToken(prefixAccess, tok); !ok || got != gid {
		t.Fatalf("parseToken(%q) = %q, %v", tok, got, ok)
	}
	tests := []struct{ name, prefix, tok string }{
		{"another kind", prefixRefresh, tok},
		{"a truncated token", prefixAccess, tok[:len(tok)-1]},
		{"an upper-case grant ID", prefixAccess, prefixAccess + strings.ToUpper(gid) + tok[len(prefixAccess)+grantIDLen:]},
		{"a Redis hash tag in the grant ID", prefixAccess, prefixAccess + "{" + gid[1:] + tok[len(prefixAccess)+grantIDLen:]},
		{"padding in the random part", prefixAccess, tok[:len(tok)-1] + "="},
		{"an empty string", prefixAccess, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := parseToken(tt.prefix, tt.tok); ok {
				t.Errorf("parseToken(%q) accepted", tt.tok)
			}
		})
	}
}
