package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// Environment variables that may hold secrets, as alternatives to the *File fields.
const (
	EnvUpstreamClientSecret = "MCPAUTH_UPSTREAM_CLIENT_SECRET"
	EnvRedisPassword        = "MCPAUTH_REDIS_PASSWORD"
	EnvEncryptionKey        = "MCPAUTH_ENCRYPTION_KEY"
)

// MinEncryptionKeyBytes is the least key material accepted: 256 bits.
const MinEncryptionKeyBytes = 32

// MinAdminTokenLen is the shortest admin token accepted (the server's own minimum).
const MinAdminTokenLen = 32

// Secrets are the secret values the server needs, resolved from files and the
// environment. They print as a placeholder, so logging a Secrets by mistake leaks
// nothing.
type Secrets struct {
	// UpstreamClientSecret is the server's client secret at the upstream provider.
	UpstreamClientSecret string
	// RedisPassword is the Redis password; empty when none is configured.
	RedisPassword string
	// EncryptionKey is the decoded key material, at least MinEncryptionKeyBytes long.
	EncryptionKey []byte
	// EncryptionKeyGenerated says EncryptionKey was generated at random because none
	// was configured and the store is in memory. The server should say so in its log.
	EncryptionKeyGenerated bool
	// AdminToken is the admin API's bearer token, from secrets.adminTokenFile; empty
	// when none is configured (the admin API is off).
	AdminToken string
}

// String hides the values.
func (Secrets) String() string { return "config.Secrets{…}" }

// GoString hides the values from %#v too.
func (s Secrets) GoString() string { return s.String() }

// ResolveSecrets reads the secrets the configuration points at: each from its *File
// field through readFile, or else from its environment variable through getenv.
// Setting both is an error, so the value in use is never a surprise. nil getenv means
// os.Getenv and nil readFile means os.ReadFile. File contents are trimmed of
// surrounding white space (a trailing newline from `echo` is common). All problems are
// returned joined, each naming the field or variable at fault.
func (c *Config) ResolveSecrets(getenv func(string) string, readFile func(string) ([]byte, error)) (*Secrets, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if readFile == nil {
		readFile = os.ReadFile
	}
	var s Secrets
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)})
	}

	v, err := resolveSecret(getenv, readFile, "upstream.clientSecretFile", c.Upstream.ClientSecretFile, EnvUpstreamClientSecret)
	switch {
	case err != nil:
		errs = append(errs, err)
	case v == "":
		fail("upstream.clientSecretFile", "required (or set %s)", EnvUpstreamClientSecret)
	}
	s.UpstreamClientSecret = v

	if c.Store.Type == StoreRedis && c.Store.Redis != nil {
		v, err := resolveSecret(getenv, readFile, "store.redis.passwordFile", c.Store.Redis.PasswordFile, EnvRedisPassword)
		if err != nil {
			errs = append(errs, err)
		}
		s.RedisPassword = v
	}

	v, err = resolveSecret(getenv, readFile, "secrets.encryptionKeyFile", c.Secrets.EncryptionKeyFile, EnvEncryptionKey)
	switch {
	case err != nil:
		errs = append(errs, err)
	case v == "" && c.Store.Type == StoreRedis:
		// A generated key would make every upstream token in Redis unreadable, and
		// every token hash unmatchable, after the next restart or on another replica.
		fail("secrets.encryptionKeyFile", "required with store.type \"redis\" (or set %s), so that all replicas and restarts share one key", EnvEncryptionKey)
	case v == "":
		s.EncryptionKey = make([]byte, MinEncryptionKeyBytes)
		if _, err := rand.Read(s.EncryptionKey); err != nil {
			return nil, fmt.Errorf("generate encryption key: %w", err)
		}
		s.EncryptionKeyGenerated = true
	default:
		key, err := decodeKey(v)
		if err != nil {
			field := "secrets.encryptionKeyFile"
			if c.Secrets.EncryptionKeyFile == "" {
				field = EnvEncryptionKey
			}
			fail(field, "%v", err)
		}
		s.EncryptionKey = key
	}

	if f := c.Secrets.AdminTokenFile; f != "" {
		v, err := readSecretFile(readFile, f)
		switch {
		case err != nil:
			fail("secrets.adminTokenFile", "%v", err)
		case len(v) < MinAdminTokenLen:
			fail("secrets.adminTokenFile", "the token is %d characters; use at least %d (generate with: head -c 32 /dev/urandom | base64)", len(v), MinAdminTokenLen)
		default:
			s.AdminToken = v
		}
	}

	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &s, nil
}

// resolveSecret returns the secret from file (when set) or from the environment
// variable env. Empty means neither is set.
func resolveSecret(getenv func(string) string, readFile func(string) ([]byte, error), field, file, env string) (string, error) {
	fromEnv := getenv(env)
	switch {
	case file != "" && fromEnv != "":
		return "", &FieldError{Field: field, Detail: fmt.Sprintf("set, and %s is set too; use one", env)}
	case file != "":
		v, err := readSecretFile(readFile, file)
		if err != nil {
			return "", &FieldError{Field: field, Detail: err.Error()}
		}
		return v, nil
	}
	return strings.TrimSpace(fromEnv), nil
}

func readSecretFile(readFile func(string) ([]byte, error), path string) (string, error) {
	b, err := readFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// decodeKey decodes base64 in any of its common forms. Raw bytes are not accepted:
// a base64 string is also a valid raw key, so accepting both would make the key
// depend on a guess.
func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) < MinEncryptionKeyBytes {
				return nil, fmt.Errorf("decodes to %d bytes; need at least %d (generate with: head -c 32 /dev/urandom | base64)", len(key), MinEncryptionKeyBytes)
			}
			return key, nil
		}
	}
	return nil, fmt.Errorf("not base64 (generate with: head -c 32 /dev/urandom | base64)")
}
