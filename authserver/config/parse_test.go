package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const minimalYAML = `
issuer: https://auth.example.com/
upstream:
  type: github
  clientID: Iv1.abc
`

// env returns a getenv backed by a map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseFillsDefaultsAndNormalizesIssuer(t *testing.T) {
	c, err := Parse([]byte(minimalYAML), nil)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Default()
	want.Issuer = "https://auth.example.com"
	want.Upstream = Upstream{Type: UpstreamGitHub, ClientID: "Iv1.abc"}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Parse =\n%+v\nwant\n%+v", c, want)
	}
	if got := c.CallbackURL(); got != "https://auth.example.com/oauth/callback" {
		t.Errorf("CallbackURL = %q", got)
	}
}

func TestParseKeepsIssuerBytesOtherwise(t *testing.T) {
	// Clients compare the issuer byte for byte; only trailing slashes may go.
	for in, want := range map[string]string{
		"https://Auth.Example.com:443/Tenant//": "https://Auth.Example.com:443/Tenant",
		"https://auth.example.com":              "https://auth.example.com",
		"http://127.0.0.1:8080/":                "http://127.0.0.1:8080",
	} {
		c, err := Parse([]byte(strings.Replace(minimalYAML, "https://auth.example.com/", in, 1)), nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if c.Issuer != want {
			t.Errorf("issuer %q became %q, want %q", in, c.Issuer, want)
		}
	}
}

// opaqueYAML picks opaque access tokens, so that a config moved to the redis store
// by the environment needs no signing keys file.
const opaqueYAML = "tokens: {accessTokenFormat: opaque}\n"

func TestParseExampleFile(t *testing.T) {
	c, err := Load(filepath.Join("..", "..", "docs", "authserver.example.yaml"), nil)
	if err != nil {
		t.Fatalf("the documented example does not load: %v", err)
	}
	if c.Upstream.Type != UpstreamOIDC || c.Store.Redis == nil || c.Store.Redis.KeyPrefix != "tenant-a" ||
		len(c.Clients) != 5 || c.Clients[1].TokenEndpointAuthMethod != AuthMethodClientSecretBasic ||
		c.Clients[3].GrantTypes[0] != GrantClientCredentials || !c.DeviceAuthorization.Enabled ||
		len(c.Clients[2].Resources) != 1 || c.Secrets.AdminTokenFile != "/etc/mcpauth/admin/admin-token" ||
		c.Tokens.ClientRegistrationTTL.Duration() != 8760*time.Hour ||
		len(c.Access.ScopeMappings) != 1 || c.Access.Allow.Groups[0] != "mcp-users" {
		t.Errorf("example decoded unexpectedly: %+v", c)
	}
}

func TestParseRejectsUnknownFields(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"top-level typo", minimalYAML + "issur: x\n", []string{"issur: unknown field"}},
		{"nested typo", minimalYAML + "  clientSecretFil: /x\n", []string{"upstream.clientSecretFil: unknown field"}},
		{"case differs from the field's", minimalYAML + "  clientId: x\n", []string{`upstream.clientId: unknown field (did you mean "clientID"?)`}},
		{"inside a list", minimalYAML + "clients:\n- clientID: a\n  redirectURIs: [https://a.example/cb]\n- clientID: b\n  redirectUris: [https://b.example/cb]\n",
			[]string{`clients[1].redirectUris: unknown field (did you mean "redirectURIs"?)`}},
		{"several at once", minimalYAML + "listen: x\ntokens:\n  accessTTL: 5m\nstore:\n  redis:\n    adress: x\n",
			[]string{"listen: unknown field", "tokens.accessTTL: unknown field", "store.redis.adress: unknown field"}},
		{"a secret value has no field", minimalYAML + "  clientSecret: hunter2\n", []string{"upstream.clientSecret: unknown field"}},
		{"duplicate keys", minimalYAML + "issuer: https://other.example.com\n", []string{"invalid YAML:"}},
		{"not YAML", "issuer: [", []string{"invalid YAML:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			assertProblems(t, err, tt.want...)
		})
	}
}

func TestParseRejectsWrongTypesByPath(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"number where a string belongs", "issuer: https://a.example\nupstream: {type: slack, clientID: 1234.5678}\n",
			"upstream.clientID: expected a string, got a number (quote values such as 123"},
		{"boolean where a string belongs", minimalYAML + "store: {type: redis, redis: {url: 'redis://r:6379', keyPrefix: no}}\n",
			"store.redis.keyPrefix: expected a string"},
		{"number as a duration", minimalYAML + "tokens: {accessTokenTTL: 900}\n",
			`tokens.accessTokenTTL: must be a duration string such as "15m"`},
		{"malformed duration", minimalYAML + "tokens: {accessTokenTTL: 15 minutes}\n",
			`tokens.accessTokenTTL: "15 minutes" is not a duration`},
		{"string where a list belongs", minimalYAML + "scopesSupported: mcp\n", "scopesSupported: expected a list, got a string"},
		{"wrong type inside a list", minimalYAML + "clients:\n- clientID: a\n  redirectURIs: [https://a.example/cb, 7]\n",
			"clients[0].redirectURIs[1]: expected a string"},
		{"string where a bool belongs", minimalYAML + "allowPKCEPlain: 'true'\n", "allowPKCEPlain: expected true or false, got a string"},
		{"fraction where an int belongs", minimalYAML + "store: {type: redis, redis: {addresses: ['r:1'], db: 1.5}}\n", "store.redis.db: expected a whole number"},
		{"list where an object belongs", minimalYAML + "tls: []\n", "tls: expected an object, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml), nil)
			assertProblems(t, err, tt.want)
		})
	}
}

func TestParseEnvOverrides(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		check func(t *testing.T, c *Config)
	}{
		{"TTL variables count seconds", minimalYAML, map[string]string{
			EnvAuthCodeTTL: "120", EnvAccessTokenTTL: "300", EnvRefreshTokenTTL: "43200",
			EnvClientRegistrationTTL: "31536000", EnvExternalTokenTTL: "3600",
		}, func(t *testing.T, c *Config) {
			want := Tokens{
				AuthorizationCodeTTL: Duration(2 * time.Minute), AccessTokenTTL: Duration(5 * time.Minute),
				RefreshTokenTTL: Duration(12 * time.Hour), ClientRegistrationTTL: Duration(365 * 24 * time.Hour),
				ExternalTokenTTL: Duration(time.Hour), AccessTokenFormat: AccessTokenJWT,
				RefreshReuseWindow: Duration(DefaultRefreshReuseWindow),
			}
			if c.Tokens != want {
				t.Errorf("Tokens = %+v, want %+v", c.Tokens, want)
			}
		}},
		{"environment wins over the file", minimalYAML + "tokens: {accessTokenTTL: 20m}\n", map[string]string{EnvAccessTokenTTL: "600"},
			func(t *testing.T, c *Config) {
				if c.Tokens.AccessTokenTTL.Duration() != 10*time.Minute {
					t.Errorf("accessTokenTTL = %s, want 10m", c.Tokens.AccessTokenTTL)
				}
			}},
		{"empty variables are unset", minimalYAML, map[string]string{EnvAccessTokenTTL: "", EnvSessionProvider: ""},
			func(t *testing.T, c *Config) {
				if c.Tokens.AccessTokenTTL.Duration() != DefaultAccessTokenTTL || c.Store.Type != StoreMemory {
					t.Errorf("got %+v", c)
				}
			}},
		{"SESSION_PROVIDER and SESSION_REDIS_URL select redis, password allowed", minimalYAML + opaqueYAML,
			map[string]string{EnvSessionProvider: "redis", EnvSessionRedisURL: "redis://:pw@redis:6379/0"},
			func(t *testing.T, c *Config) {
				if c.Store.Type != StoreRedis || c.Store.Redis == nil || c.Store.Redis.URL != "redis://:pw@redis:6379/0" || c.Store.Redis.KeyPrefix != DefaultKeyPrefix {
					t.Errorf("Store = %+v %+v", c.Store, c.Store.Redis)
				}
			}},
		{"SESSION_REDIS_URL replaces the file's url", minimalYAML + opaqueYAML + "store: {type: redis, redis: {url: 'redis://a:6379', keyPrefix: t1}}\n",
			map[string]string{EnvSessionRedisURL: "rediss://b:6380"},
			func(t *testing.T, c *Config) {
				if c.Store.Redis.URL != "rediss://b:6380" || c.Store.Redis.KeyPrefix != "t1" {
					t.Errorf("Redis = %+v", c.Store.Redis)
				}
			}},
		{"SESSION_PROVIDER=memory runs a redis config locally", minimalYAML + "store: {type: redis, redis: {url: 'redis://a:6379'}}\n",
			map[string]string{EnvSessionProvider: "memory"},
			func(t *testing.T, c *Config) {
				if c.Store.Type != StoreMemory {
					t.Errorf("store.type = %q", c.Store.Type)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.yaml), env(tt.env))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestParseEnvProblemsNameTheVariable(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"not a number", map[string]string{EnvAccessTokenTTL: "15m"}, []string{`OAUTH_ACCESS_TOKEN_TTL: "15m" is not a whole number of seconds`}},
		{"overflow", map[string]string{EnvRefreshTokenTTL: "99999999999999"}, []string{`OAUTH_REFRESH_TOKEN_TTL: "99999999999999" seconds is out of range`}},
		{"out of bounds", map[string]string{EnvAuthCodeTTL: "3600"}, []string{"tokens.authorizationCodeTTL: 1h is outside [10s, 10m] (set by OAUTH_AUTH_CODE_TTL)"}},
		{"unknown provider", map[string]string{EnvSessionProvider: "sqlite"}, []string{`store.type: "sqlite" is not one of memory, redis (set by SESSION_PROVIDER)`}},
		{"redis without url", map[string]string{EnvSessionProvider: "redis"}, []string{`store.redis: required when store.type is "redis" (or set SESSION_REDIS_URL)`}},
		{"bad url", map[string]string{EnvSessionProvider: "redis", EnvSessionRedisURL: "localhost:6379"}, []string{"store.redis.url: must be a redis:// or rediss:// URL with a host (set by SESSION_REDIS_URL)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(minimalYAML+opaqueYAML), env(tt.env))
			assertProblems(t, err, tt.want...)
		})
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	example, err := Load(filepath.Join("..", "..", "docs", "authserver.example.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	built := validConfig()
	built.DynamicRegistration.Enabled = false // a false whose default is true
	built.ClientIDMetadataDocuments.Enabled = false
	built.ScopesSupported, built.DefaultScopes = nil, nil // empty, whose default is not
	built.Tokens.AccessTokenTTL = Duration(90 * time.Second)
	built.Store = Store{Type: StoreRedis, Redis: &Redis{Addresses: []string{"a:26379"}, MasterName: "m", DB: 2, KeyPrefix: "t"}}
	built.Secrets.SigningKeysFile = "/keys/signing-keys.json"
	built.Clients = []Client{{ClientID: "c", RedirectURIs: []string{"http://127.0.0.1/cb"}, SecretHash: HashClientSecret("s"),
		TokenEndpointAuthMethod: AuthMethodClientSecretPost, GrantTypes: []string{GrantAuthorizationCode}, Trusted: true}}

	for name, c := range map[string]*Config{"the example": example, "a config built in Go": built} {
		t.Run(name, func(t *testing.T) {
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			data, err := Marshal(c)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			back, err := Parse(data, nil)
			if err != nil {
				t.Fatalf("Parse(Marshal(c)): %v\n%s", err, data)
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("round trip changed the config:\n%s\ngot  %+v\nwant %+v", data, back, c)
			}
		})
	}
}

func TestMarshalWritesReadableDurations(t *testing.T) {
	data, err := Marshal(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"accessTokenTTL: 15m\n", "clientRegistrationTTL: 8760h\n", "authorizationCodeTTL: 5m\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("marshalled config lacks %q:\n%s", want, data)
		}
	}
}

func TestDurationString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 90 * time.Second: "90s", 15 * time.Minute: "15m", 8760 * time.Hour: "8760h",
		1500 * time.Millisecond: "1.5s", -time.Hour: "-1h",
	} {
		if got := Duration(d).String(); got != want {
			t.Errorf("Duration(%v).String() = %q, want %q", d, got, want)
		}
		if back, err := time.ParseDuration(Duration(d).String()); err != nil || back != d {
			t.Errorf("%q does not parse back to %v", Duration(d).String(), d)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	if err == nil || !strings.Contains(err.Error(), "read config: open ") {
		t.Fatalf("Load(missing) = %v", err)
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("issuer: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path, nil)
	if err == nil || !strings.Contains(err.Error(), "config "+path+":\n") || !strings.Contains(err.Error(), "issuer: must be an https URL") {
		t.Fatalf("Load(invalid) = %v", err)
	}
}

func TestEmptyFileReportsRequiredFields(t *testing.T) {
	_, err := Parse(nil, nil)
	assertProblems(t, err, "issuer: required", "upstream.type: required", "upstream.clientID: required")
}
