package authserver

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// HKDF info strings. Each purpose gets its own key so that a value made for one can
// never be replayed as another (a cookie MAC is not a token hash).
const (
	infoTokenHMAC   = "mcpauth/v1 token-hmac"
	infoCookieHMAC  = "mcpauth/v1 cookie-hmac"
	infoUpstreamAES = "mcpauth/v1 upstream-aes-256-gcm"
)

// Labels separate the kinds of value hashed under the token key.
const (
	labelToken        = "token"          // codes, access and refresh tokens (prefix included)
	labelState        = "upstream-state" // the state we send upstream
	labelClientSecret = "client-secret"
	labelBrowser      = "browser"   // the flow cookie
	labelUserCode     = "user-code" // RFC 8628 user codes, normalized
	// labelRegistrationToken: RFC 7592 registration access tokens.
	labelRegistrationToken = "registration-token"
)

// sealVersion prefixes every ciphertext so the format can change later.
const sealVersion byte = 1

// keys are the server's working keys, all derived from Options.MasterKey.
type keys struct {
	token  []byte // HMAC-SHA-256 over secrets the store keys records by
	cookie []byte // HMAC-SHA-256 for signed cookies and CSRF tokens
	aead   cipher.AEAD
	// tokenMACs and cookieMACs keep keyed HMAC states for reuse: a request computes
	// several MACs, and setting one up (two allocated SHA-256 states, the padded key
	// hashed twice) cost more than the MAC of a short token.
	tokenMACs, cookieMACs sync.Pool
}

// deriveKeys expands the master key with HKDF-SHA-256 (RFC 5869) into one key per
// purpose. The master key is already uniformly random, so no salt is needed (RFC 5869
// §3.1); replicas derive the same keys from the same secret.
func deriveKeys(master []byte) (*keys, error) {
	if len(master) < MinMasterKeyLen {
		return nil, fmt.Errorf("master key: %d bytes, need at least %d", len(master), MinMasterKeyLen)
	}
	derive := func(info string) ([]byte, error) {
		return hkdf.Key(sha256.New, master, nil, info, 32)
	}
	tk, err := derive(infoTokenHMAC)
	if err != nil {
		return nil, err
	}
	ck, err := derive(infoCookieHMAC)
	if err != nil {
		return nil, err
	}
	ek, err := derive(infoUpstreamAES)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(ek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &keys{token: tk, cookie: ck, aead: aead}
	k.tokenMACs.New = func() any { return hmac.New(sha256.New, tk) }
	k.cookieMACs.New = func() any { return hmac.New(sha256.New, ck) }
	return k, nil
}

// hash is the keyed hash (HMAC-SHA-256, hex) the store keys records by. Secrets here
// are 256-bit random strings, so a fast keyed hash is the right tool: a slow password
// hash would add nothing but latency (see DESIGN.md, "The store").
func (k *keys) hash(label, value string) string {
	return hex.EncodeToString(macOf(&k.tokenMACs, label, value))
}

// sign is the MAC for cookies and CSRF tokens.
func (k *keys) sign(label, value string) []byte {
	return macOf(&k.cookieMACs, label, value)
}

// macOf computes HMAC-SHA-256 of label, a zero byte and value, with a keyed state from
// pool.
func macOf(pool *sync.Pool, label, value string) []byte {
	m := pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(value))
	sum := m.Sum(nil)
	pool.Put(m)
	return sum
}

// equalHash compares two hashes in constant time.
func equalHash(a, b string) bool {
	return hmac.Equal([]byte(a), []byte(b))
}

// seal encrypts a user's upstream token with AES-256-GCM. The associated data (the
// user ID the record is stored under) binds the ciphertext to its key, so a record
// copied under another user's key fails to open.
func (k *keys) seal(plaintext []byte, userID string) ([]byte, error) {
	return k.sealAD(plaintext, sealAAD(userID))
}

// open reverses seal.
func (k *keys) open(ciphertext []byte, userID string) ([]byte, error) {
	return k.openAD(ciphertext, sealAAD(userID))
}

// sealAD encrypts plaintext with AES-256-GCM under associated data ad, which names
// what the ciphertext is and where it is stored: opening it anywhere else fails.
func (k *keys) sealAD(plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+k.aead.Overhead())
	out = append(out, sealVersion)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, ad), nil
}

// openAD reverses sealAD.
func (k *keys) openAD(ciphertext, ad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(ciphertext) < 1+ns+k.aead.Overhead() || ciphertext[0] != sealVersion {
		return nil, errors.New("sealed record: malformed ciphertext")
	}
	nonce, body := ciphertext[1:1+ns], ciphertext[1+ns:]
	plain, err := k.aead.Open(nil, nonce, body, ad)
	if err != nil {
		return nil, errors.New("sealed record: cannot decrypt (wrong key, wrong place or tampered)")
	}
	return plain, nil
}

func sealAAD(userID string) []byte {
	return []byte("mcpauth upstream token\x00" + userID)
}

// successorAAD binds a sealed refresh successor (see token.go) to the grant and the
// rotated refresh token it was kept for.
func successorAAD(grantID, oldHash string) []byte {
	return []byte("mcpauth refresh successor\x00" + grantID + "\x00" + oldHash)
}
