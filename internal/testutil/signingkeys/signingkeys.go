// Package signingkeys writes signing keys files (config.SigningKeySet) for tests and
// test harnesses that run the authorization server with JWT access tokens: fresh
// keys, in the file format the operator writes.
//
//	key, err := signingkeys.Generate("k1", config.SigningES256, time.Now(), time.Time{})
//	err = signingkeys.WriteFile(path, key)
package signingkeys

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"github.com/mcpauth/mcpauth/authserver/config"
)

// Generate makes a key of alg (config.SigningES256 or config.SigningRS256) that signs
// from activateAt and, when publishUntil is not zero, leaves the JWKS then.
func Generate(kid, alg string, activateAt, publishUntil time.Time) (config.SigningKey, error) {
	key, err := config.NewSigningKey(kid, alg, activateAt)
	key.PublishUntil = publishUntil
	return key, err
}

// Marshal returns the signing keys file holding keys.
func Marshal(keys ...config.SigningKey) ([]byte, error) {
	return json.Marshal(config.SigningKeySet{Keys: keys})
}

// WriteFile writes the file holding keys to path, through a new file renamed over the
// old one, so that a server polling it never reads half of it.
func WriteFile(path string, keys ...config.SigningKey) error {
	data, err := Marshal(keys...)
	if err != nil {
		return err
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteNew writes a file of one fresh ES256 key, active from a minute ago, and
// returns its path: what a test needs to run replicas that share their keys.
func WriteNew(dir string) (string, error) {
	key, err := Generate("test-key-1", config.SigningES256, time.Now().Add(-time.Minute), time.Time{})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "signing-keys.json")
	return path, WriteFile(path, key)
}
