package config

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// key32 is 32 bytes of key material in standard base64.
var key32 = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func fakeFiles(files map[string]string) func(string) ([]byte, error) {
	return func(p string) ([]byte, error) {
		if v, ok := files[p]; ok {
			return []byte(v), nil
		}
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
}

func redisConfig() *Config {
	c := validConfig()
	c.Store = Store{Type: StoreRedis, Redis: &Redis{URL: "redis://r:6379", PasswordFile: "/redis/password"}}
	c.Upstream.ClientSecretFile = "/upstream/secret"
	c.Secrets.EncryptionKeyFile = "/keys/key"
	return c
}

func TestResolveSecretsFromFiles(t *testing.T) {
	s, err := redisConfig().ResolveSecrets(env(nil), fakeFiles(map[string]string{
		"/upstream/secret": "up-secret\n", "/redis/password": "  pw  ", "/keys/key": key32 + "\n",
	}))
	if err != nil {
		t.Fatalf("ResolveSecrets: %v", err)
	}
	if s.UpstreamClientSecret != "up-secret" || s.RedisPassword != "pw" ||
		string(s.EncryptionKey) != "0123456789abcdef0123456789abcdef" || s.EncryptionKeyGenerated {
		t.Fatalf("got %q %q %q %v", s.UpstreamClientSecret, s.RedisPassword, s.EncryptionKey, s.EncryptionKeyGenerated)
	}
}

func TestResolveSecretsFromEnvironment(t *testing.T) {
	c := redisConfig()
	c.Upstream.ClientSecretFile, c.Store.Redis.PasswordFile, c.Secrets.EncryptionKeyFile = "", "", ""
	urlKey := base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 40))
	s, err := c.ResolveSecrets(env(map[string]string{
		EnvUpstreamClientSecret: "up", EnvRedisPassword: "pw", EnvEncryptionKey: urlKey,
	}), fakeFiles(nil))
	if err != nil {
		t.Fatalf("ResolveSecrets: %v", err)
	}
	if s.UpstreamClientSecret != "up" || s.RedisPassword != "pw" || !bytes.Equal(s.EncryptionKey, bytes.Repeat([]byte{0xfb}, 40)) {
		t.Fatalf("got %q %q %x", s.UpstreamClientSecret, s.RedisPassword, s.EncryptionKey)
	}
}

func TestResolveSecretsGeneratesKeyForMemoryStore(t *testing.T) {
	c := validConfig()
	a, err := c.ResolveSecrets(env(map[string]string{EnvUpstreamClientSecret: "up"}), fakeFiles(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.ResolveSecrets(env(map[string]string{EnvUpstreamClientSecret: "up"}), fakeFiles(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !a.EncryptionKeyGenerated || len(a.EncryptionKey) != MinEncryptionKeyBytes || bytes.Equal(a.EncryptionKey, b.EncryptionKey) {
		t.Fatalf("generated keys: %x %x (generated=%v)", a.EncryptionKey, b.EncryptionKey, a.EncryptionKeyGenerated)
	}
}

func TestResolveSecretsProblems(t *testing.T) {
	files := map[string]string{
		"/upstream/secret": "up", "/redis/password": "pw", "/keys/key": key32, "/empty": "\n",
		"/short": base64.StdEncoding.EncodeToString(make([]byte, 16)),
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		env    map[string]string
		want   []string
	}{
		{"missing file", func(c *Config) { c.Upstream.ClientSecretFile = "/x" }, nil,
			[]string{"upstream.clientSecretFile: open /x: file does not exist"}},
		{"empty file", func(c *Config) { c.Store.Redis.PasswordFile = "/empty" }, nil,
			[]string{"store.redis.passwordFile: /empty is empty"}},
		{"upstream secret required", func(c *Config) { c.Upstream.ClientSecretFile = "" }, nil,
			[]string{"upstream.clientSecretFile: required (or set MCPAUTH_UPSTREAM_CLIENT_SECRET)"}},
		{"file and environment both set", nil, map[string]string{EnvUpstreamClientSecret: "x", EnvEncryptionKey: key32},
			[]string{"upstream.clientSecretFile: set, and MCPAUTH_UPSTREAM_CLIENT_SECRET is set too", "secrets.encryptionKeyFile: set, and MCPAUTH_ENCRYPTION_KEY is set too"}},
		{"redis needs a stable key", func(c *Config) { c.Secrets.EncryptionKeyFile = "" }, nil,
			[]string{`secrets.encryptionKeyFile: required with store.type "redis"`}},
		{"key too short", func(c *Config) { c.Secrets.EncryptionKeyFile = "/short" }, nil,
			[]string{"secrets.encryptionKeyFile: decodes to 16 bytes; need at least 32"}},
		{"key not base64", func(c *Config) { c.Secrets.EncryptionKeyFile = "" }, map[string]string{EnvEncryptionKey: strings.Repeat("!", 44)},
			[]string{"MCPAUTH_ENCRYPTION_KEY: not base64"}},
		{"admin token file missing", func(c *Config) { c.Secrets.AdminTokenFile = "/admin" }, nil,
			[]string{"secrets.adminTokenFile: open /admin: file does not exist"}},
		{"admin token too short", func(c *Config) { c.Secrets.AdminTokenFile = "/upstream/secret" }, nil,
			[]string{"secrets.adminTokenFile: the token is 2 characters; use at least 32"}},
		{"every problem at once", func(c *Config) {
			c.Upstream.ClientSecretFile = "/a"
			c.Store.Redis.PasswordFile = "/b"
			c.Secrets.EncryptionKeyFile = "/c"
		}, nil,
			[]string{"upstream.clientSecretFile: open /a", "store.redis.passwordFile: open /b", "secrets.encryptionKeyFile: open /c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := redisConfig()
			if tt.mutate != nil {
				tt.mutate(c)
			}
			s, err := c.ResolveSecrets(env(tt.env), fakeFiles(files))
			if s != nil {
				t.Errorf("got secrets despite problems")
			}
			assertProblems(t, err, tt.want...)
		})
	}
}

func TestResolveSecretsReadsTheAdminToken(t *testing.T) {
	c := redisConfig()
	c.Secrets.AdminTokenFile = "/admin/admin-token"
	token := strings.Repeat("a", 43)
	s, err := c.ResolveSecrets(env(nil), fakeFiles(map[string]string{
		"/upstream/secret": "up", "/redis/password": "pw", "/keys/key": key32, "/admin/admin-token": token + "\n",
	}))
	if err != nil {
		t.Fatalf("ResolveSecrets: %v", err)
	}
	if s.AdminToken != token {
		t.Errorf("AdminToken %q, want the file's contents without the newline", s.AdminToken)
	}
	c.Secrets.AdminTokenFile = ""
	if s, err := c.ResolveSecrets(env(nil), fakeFiles(map[string]string{"/upstream/secret": "up", "/redis/password": "pw", "/keys/key": key32})); err != nil || s.AdminToken != "" {
		t.Errorf("without adminTokenFile: %q, %v; want no token", s.AdminToken, err)
	}
}

func TestSecretsDoNotPrint(t *testing.T) {
	s := &Secrets{UpstreamClientSecret: "hunter2", RedisPassword: "hunter3", EncryptionKey: []byte("hunter4"), AdminToken: "hunter5"}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{s, *s} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, "hunter") || strings.Contains(out, "68756e74") {
				t.Errorf("Sprintf(%q) leaks: %s", verb, out)
			}
		}
	}
}
