package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// validConfig is the smallest configuration that validates; each case below breaks
// one thing in it.
func validConfig() *Config {
	c := Default()
	c.Issuer = "https://auth.example.com"
	c.Upstream = Upstream{Type: UpstreamOIDC, ClientID: "mcpauth", IssuerURL: "https://idp.example.com"}
	return c
}

// problems flattens a joined error into its messages.
func problems(err error) []string {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	return []string{err.Error()}
}

// assertProblems checks that err holds exactly the wanted problems, each given as a
// prefix of one message, in any order.
func assertProblems(t *testing.T, err error, want ...string) {
	t.Helper()
	got := problems(err)
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n  got:  %s\n  want: %s", len(got), len(want),
			strings.Join(got, "\n        "), strings.Join(want, "\n        "))
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no problem starts with %q; got:\n  %s", w, strings.Join(got, "\n  "))
		}
	}
}

func TestValidConfigValidates(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}

func TestValidateNamesEveryInvalidField(t *testing.T) {
	redis := func(r Redis) func(c *Config) {
		return func(c *Config) {
			c.Store = Store{Type: StoreRedis, Redis: &r}
			c.Secrets.SigningKeysFile = "/keys/signing-keys.json"
		}
	}
	tests := []struct {
		name   string
		mutate func(c *Config)
		want   []string // prefixes of each expected problem; none means valid
	}{
		// deviceAuthorization
		{"device code TTL too short", func(c *Config) { c.DeviceAuthorization.CodeTTL = Duration(30 * time.Second) }, []string{"deviceAuthorization.codeTTL: 30s is outside [1m, 1h]"}},
		{"device interval not whole seconds", func(c *Config) { c.DeviceAuthorization.Interval = Duration(1500 * time.Millisecond) }, []string{"deviceAuthorization.interval: 1.5s is not a whole number"}},
		{"device interval too long", func(c *Config) { c.DeviceAuthorization.Interval = Duration(2 * time.Minute) }, []string{"deviceAuthorization.interval: 2m is not a whole number"}},
		{"device flow on with defaults", func(c *Config) { c.DeviceAuthorization.Enabled = true }, nil},
		// issuer
		{"issuer is required", func(c *Config) { c.Issuer = "" }, []string{"issuer: required"}},
		{"issuer must be http(s)", func(c *Config) { c.Issuer = "ftp://auth.example.com" }, []string{"issuer: must be an https URL"}},
		{"issuer over http needs loopback", func(c *Config) { c.Issuer = "http://auth.example.com" }, []string{"issuer: must be https; http is allowed only on a loopback host"}},
		{"issuer over http on 127.0.0.1 is fine", func(c *Config) { c.Issuer = "http://127.0.0.1:8080" }, nil},
		{"issuer over http on localhost is fine", func(c *Config) { c.Issuer = "http://localhost:8080" }, nil},
		{"issuer over http on [::1] is fine", func(c *Config) { c.Issuer = "http://[::1]:8080" }, nil},
		{"issuer may have a path", func(c *Config) { c.Issuer = "https://example.com/tenant-a" }, nil},
		{"issuer without host", func(c *Config) { c.Issuer = "https://" }, []string{"issuer: must have a host"}},
		{"issuer with query", func(c *Config) { c.Issuer = "https://auth.example.com?x=1" }, []string{"issuer: must not have a query"}},
		{"issuer with empty query", func(c *Config) { c.Issuer = "https://auth.example.com/?" }, []string{"issuer: must not have a query"}},
		{"issuer with fragment", func(c *Config) { c.Issuer = "https://auth.example.com#x" }, []string{"issuer: must not have a fragment"}},
		{"issuer with user info", func(c *Config) { c.Issuer = "https://u:p@auth.example.com" }, []string{"issuer: must not contain user info"}},
		{"issuer with space", func(c *Config) { c.Issuer = "https://auth.example.com/a b" }, []string{"issuer: must not contain spaces"}},

		// addresses, names
		{"listenAddress is required", func(c *Config) { c.ListenAddress = "" }, []string{"listenAddress: required"}},
		{"listenAddress needs a port", func(c *Config) { c.ListenAddress = "8080" }, []string{`listenAddress: "8080" is not host:port`}},
		{"listenAddress port in range", func(c *Config) { c.ListenAddress = ":99999" }, []string{`listenAddress: ":99999" has no valid port number`}},
		{"metricsAddress is host:port", func(c *Config) { c.MetricsAddress = "metrics" }, []string{`metricsAddress: "metrics" is not host:port`}},
		{"metricsAddress on another port", func(c *Config) { c.MetricsAddress = "127.0.0.1:8080" }, []string{"metricsAddress: uses the port of listenAddress"}},
		{"metricsAddress on its own port is fine", func(c *Config) { c.MetricsAddress = ":9090" }, nil},
		{"displayName length", func(c *Config) { c.DisplayName = strings.Repeat("é", 101) }, []string{"displayName: longer than 100 characters"}},
		{"displayName control characters", func(c *Config) { c.DisplayName = "a\nb" }, []string{"displayName: must not contain control characters"}},
		{"serviceDocumentation is a URL", func(c *Config) { c.ServiceDocumentation = "docs" }, []string{"serviceDocumentation: must be an absolute http(s) URL"}},

		// scopes
		{"scopesSupported are scope tokens", func(c *Config) { c.ScopesSupported = []string{"mcp", "a b"} }, []string{`scopesSupported[1]: "a b" is not a valid scope`}},
		{"scopesSupported without quotes", func(c *Config) { c.ScopesSupported = []string{"mcp", `a"b`} }, []string{`scopesSupported[1]: "a\"b" is not a valid scope`}},
		{"scopesSupported without duplicates", func(c *Config) { c.ScopesSupported = []string{"mcp", "mcp"} }, []string{`scopesSupported[1]: duplicate scope "mcp"`}},
		{"defaultScopes within scopesSupported", func(c *Config) { c.DefaultScopes = []string{"mcp", "admin"} }, []string{`defaultScopes[1]: "admin" is not in scopesSupported`}},
		{"upstreamScopes keys are supported scopes", func(c *Config) { c.UpstreamScopes = map[string][]string{"tools:write": {"repo"}} },
			[]string{`upstreamScopes.tools:write: "tools:write" is not in scopesSupported`}},
		{"upstreamScopes name at least one upstream scope", func(c *Config) {
			c.ScopesSupported = []string{"mcp", "tools:write"}
			c.UpstreamScopes = map[string][]string{"tools:write": {}}
		}, []string{`upstreamScopes.tools:write: lists no upstream scope`}},
		{"upstreamScopes values are scope tokens", func(c *Config) {
			c.ScopesSupported = []string{"mcp", "tools:write"}
			c.UpstreamScopes = map[string][]string{"tools:write": {"repo", "a b"}}
		}, []string{`upstreamScopes.tools:write[1]: "a b" is not a valid scope (RFC 6749 §3.3)`}},
		{"a valid upstreamScopes map", func(c *Config) {
			c.ScopesSupported = []string{"mcp", "tools:write"}
			c.UpstreamScopes = map[string][]string{"tools:write": {"repo", "read:org"}}
		}, nil},
		{"no scopes at all is allowed", func(c *Config) { c.ScopesSupported, c.DefaultScopes = nil, nil }, nil},

		// callback path
		{"callbackPath is required", func(c *Config) { c.CallbackPath = "" }, []string{"callbackPath: required"}},
		{"callbackPath is absolute", func(c *Config) { c.CallbackPath = "oauth/cb" }, []string{"callbackPath: must start with /"}},
		{"callbackPath has no query", func(c *Config) { c.CallbackPath = "/cb?x=1" }, []string{"callbackPath: must be a plain path"}},
		{"callbackPath is clean", func(c *Config) { c.CallbackPath = "/a/../cb" }, []string{"callbackPath: must be a clean path"}},
		{"callbackPath has no trailing slash", func(c *Config) { c.CallbackPath = "/cb/" }, []string{"callbackPath: must be a clean path"}},
		{"callbackPath is not a fixed endpoint", func(c *Config) { c.CallbackPath = PathToken }, []string{"callbackPath: /oauth/token is a fixed endpoint"}},
		{"callbackPath is not well-known", func(c *Config) { c.CallbackPath = "/.well-known/cb" }, []string{"callbackPath: must not be under /.well-known/"}},

		// upstream
		{"upstream.type is required", func(c *Config) { c.Upstream.Type = ""; c.Upstream.IssuerURL = "" }, []string{"upstream.type: required"}},
		{"upstream.type is known", func(c *Config) { c.Upstream.Type = "okta" }, []string{`upstream.type: "okta" is not one of github, google`}},
		{"upstream.clientID is required", func(c *Config) { c.Upstream.ClientID = "" }, []string{"upstream.clientID: required"}},
		{"oidc needs issuerURL", func(c *Config) { c.Upstream.IssuerURL = "" }, []string{`upstream.issuerURL: required when upstream.type is "oidc"`}},
		{"oauth2 needs three URLs", func(c *Config) { c.Upstream = Upstream{Type: UpstreamOAuth2, ClientID: "x"} }, []string{
			`upstream.authorizationURL: required when upstream.type is "oauth2"`,
			`upstream.tokenURL: required when upstream.type is "oauth2"`,
			`upstream.userInfoURL: required when upstream.type is "oauth2"`,
		}},
		{"oauth2 takes no issuerURL", func(c *Config) {
			c.Upstream = Upstream{Type: UpstreamOAuth2, ClientID: "x", IssuerURL: "https://i", AuthorizationURL: "https://a/authorize", TokenURL: "https://a/token", UserInfoURL: "https://a/user"}
		}, []string{`upstream.issuerURL: not allowed when upstream.type is "oauth2"`}},
		{"a preset without an issuer takes none", func(c *Config) {
			c.Upstream = Upstream{Type: UpstreamGitHub, ClientID: "x", IssuerURL: "https://github.com"}
		}, []string{`upstream.issuerURL: not allowed when upstream.type is "github"`}},
		{"presets take endpoint overrides", func(c *Config) {
			c.Upstream = Upstream{Type: UpstreamGitHub, ClientID: "x", AuthorizationURL: "https://ghe.example.com/login/oauth/authorize"}
		}, nil},
		{"OIDC presets take an issuer override", func(c *Config) {
			c.Upstream = Upstream{Type: UpstreamGoogle, ClientID: "x", IssuerURL: "https://accounts.example.com"}
		}, nil},
		{"a preset alone is fine", func(c *Config) { c.Upstream = Upstream{Type: UpstreamGoogle, ClientID: "x"} }, nil},
		{"upstream URLs are https", func(c *Config) { c.Upstream.IssuerURL = "http://idp.example.com" }, []string{"upstream.issuerURL: must be https"}},
		{"upstream URLs are absolute", func(c *Config) { c.Upstream.IssuerURL = "idp.example.com" }, []string{"upstream.issuerURL: must be an absolute URL"}},
		{"upstream http on loopback is fine", func(c *Config) { c.Upstream.IssuerURL = "http://127.0.0.1:5556/dex" }, nil},
		{"upstream http with insecureAllowHTTP is fine", func(c *Config) {
			c.Upstream.IssuerURL, c.Upstream.InsecureAllowHTTP = "http://dex.dex.svc:5556/dex", true
		}, nil},
		{"upstream.scopes are scope tokens", func(c *Config) { c.Upstream.Scopes = []string{"openid", ""} }, []string{`upstream.scopes[1]: "" is not a valid scope`}},
		{"upstream.userIDField has no spaces", func(c *Config) { c.Upstream.UserIDField = "user id" }, []string{"upstream.userIDField: must not contain spaces"}},

		// tokens
		{"authorizationCodeTTL at most 10m", func(c *Config) { c.Tokens.AuthorizationCodeTTL = Duration(11 * time.Minute) }, []string{"tokens.authorizationCodeTTL: 11m is outside [10s, 10m]"}},
		{"authorizationCodeTTL at least 10s", func(c *Config) { c.Tokens.AuthorizationCodeTTL = Duration(time.Second) }, []string{"tokens.authorizationCodeTTL: 1s is outside [10s, 10m]"}},
		{"accessTokenTTL at least 5s", func(c *Config) { c.Tokens.AccessTokenTTL = Duration(2 * time.Second) }, []string{"tokens.accessTokenTTL: 2s is outside [5s, 24h]"}},
		{"accessTokenTTL at most 24h", func(c *Config) {
			c.Tokens.AccessTokenTTL, c.Tokens.RefreshTokenTTL = Duration(25*time.Hour), Duration(48*time.Hour)
		}, []string{"tokens.accessTokenTTL: 25h is outside [5s, 24h]"}},
		{"refreshTokenTTL not negative", func(c *Config) { c.Tokens.RefreshTokenTTL = Duration(-time.Hour) }, []string{
			"tokens.refreshTokenTTL: -1h is outside [10m, 8760h]", "tokens.refreshTokenTTL: -1h is shorter than tokens.accessTokenTTL"}},
		{"refreshTokenTTL at least accessTokenTTL", func(c *Config) {
			c.Tokens.AccessTokenTTL, c.Tokens.RefreshTokenTTL = Duration(time.Hour), Duration(30*time.Minute)
		}, []string{"tokens.refreshTokenTTL: 30m is shorter than tokens.accessTokenTTL (1h)"}},
		{"clientRegistrationTTL bounded", func(c *Config) { c.Tokens.ClientRegistrationTTL = 0 }, []string{"tokens.clientRegistrationTTL: 0s is outside [1h, 87600h]"}},
		{"externalTokenTTL bounded", func(c *Config) { c.Tokens.ExternalTokenTTL = Duration(time.Minute) }, []string{"tokens.externalTokenTTL: 1m is outside [5m, 8760h]"}},

		// store
		{"store.type is known", func(c *Config) { c.Store.Type = "postgres" }, []string{`store.type: "postgres" is not one of memory, redis`}},
		{"store.type is required", func(c *Config) { c.Store.Type = "" }, []string{"store.type: required"}},
		{"redis needs its section", func(c *Config) { c.Store.Type = StoreRedis }, []string{`store.redis: required when store.type is "redis"`, "secrets.signingKeysFile: required"}},
		{"memory refuses a redis section", func(c *Config) { c.Store.Redis = &Redis{URL: "redis://r:6379"} }, []string{`store.redis: set, but store.type is "memory"`}},
		{"redis needs url or addresses", redis(Redis{}), []string{"store.redis: set url or addresses"}},
		{"redis url or addresses, not both", redis(Redis{URL: "redis://r:6379", Addresses: []string{"r:6379"}}), []string{"store.redis.url: set url or addresses, not both"}},
		{"redis url scheme", redis(Redis{URL: "http://r:6379"}), []string{"store.redis.url: must be a redis:// or rediss:// URL"}},
		{"redis url without password", redis(Redis{URL: "redis://:hunter2@r:6379"}), []string{"store.redis.url: must not contain a password"}},
		{"redis url with a user name only is fine", redis(Redis{URL: "rediss://r:6379/0", Username: "mcpauth"}), nil},
		{"redis url picks TLS by scheme", redis(Redis{URL: "redis://r:6379", TLS: RedisTLS{Enabled: true}}), []string{"store.redis.tls.enabled: with url, TLS is chosen by the scheme"}},
		{"redis masterName needs addresses", redis(Redis{URL: "redis://r:6379", MasterName: "m"}), []string{"store.redis.masterName: requires addresses"}},
		{"redis db not twice", redis(Redis{URL: "redis://r:6379/2", DB: 3}), []string{"store.redis.db: the url already names a database"}},
		{"redis addresses are host:port", redis(Redis{Addresses: []string{"r:6379", "r"}}), []string{`store.redis.addresses[1]: "r" is not host:port`}},
		{"redis addresses have a host", redis(Redis{Addresses: []string{":6379"}}), []string{"store.redis.addresses[0]: needs a host"}},
		{"redis cluster has only db 0", redis(Redis{Addresses: []string{"a:6379", "b:6379"}, DB: 1}), []string{"store.redis.db: must be 0 with several addresses"}},
		{"redis sentinel may use another db", redis(Redis{Addresses: []string{"a:26379", "b:26379"}, MasterName: "m", DB: 1}), nil},
		{"redis db not negative", redis(Redis{Addresses: []string{"a:6379"}, DB: -1}), []string{"store.redis.db: must not be negative"}},
		{"redis caFile with insecureSkipVerify", redis(Redis{URL: "rediss://r:6380", TLS: RedisTLS{CAFile: "/ca", InsecureSkipVerify: true}}), []string{"store.redis.tls.caFile: pointless"}},
		{"redis keyPrefix cannot make hash tags", redis(Redis{URL: "redis://r:6379", KeyPrefix: "{t}"}), []string{`store.redis.keyPrefix: "{t}" must be 1 to 64`}},
		{"redis keyPrefix length", redis(Redis{URL: "redis://r:6379", KeyPrefix: strings.Repeat("a", 65)}), []string{"store.redis.keyPrefix:"}},
		// signing keys
		{"redis with jwt tokens needs the signing keys file", func(c *Config) {
			c.Store = Store{Type: StoreRedis, Redis: &Redis{URL: "redis://r:6379"}}
		}, []string{"secrets.signingKeysFile: required when store.type is redis and tokens.accessTokenFormat is jwt"}},
		{"redis with opaque tokens needs no signing keys file", func(c *Config) {
			c.Store = Store{Type: StoreRedis, Redis: &Redis{URL: "redis://r:6379"}}
			c.Tokens.AccessTokenFormat = AccessTokenOpaque
		}, nil},
		{"memory with jwt tokens needs no signing keys file", func(c *Config) { c.Secrets.SigningKeysFile = "" }, nil},
		{"a /oauth/jwks callback path clashes", func(c *Config) { c.CallbackPath = PathJWKS }, []string{"callbackPath: /oauth/jwks is a fixed endpoint"}},

		// tls
		{"tls needs both files", func(c *Config) { c.TLS.CertFile = "/tls.crt" }, []string{"tls: set both certFile and keyFile, or neither"}},
		{"tls with both files is fine", func(c *Config) { c.TLS = TLS{CertFile: "/tls.crt", KeyFile: "/tls.key"} }, nil},

		// static clients are validated too
		{"clients are validated", func(c *Config) { c.Clients = []Client{{ClientID: "a"}} }, []string{"clients[0].redirectURIs: at least one is required"}},
		{"client scopes within scopesSupported", func(c *Config) {
			c.Clients = []Client{{ClientID: "a", RedirectURIs: []string{"https://a.example/cb"}, Scopes: []string{"admin"}}}
		}, []string{`clients[0].scopes[0]: "admin" is not in scopesSupported`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.mutate(c)
			assertProblems(t, c.Validate(), tt.want...)
		})
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	c := Default()
	c.CallbackPath = "cb"
	err := c.Validate()
	assertProblems(t, err, "issuer: required", "upstream.type: required", "upstream.clientID: required", "callbackPath: must start with /")
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field == "" {
		t.Fatalf("errors.As(*FieldError) = %v, %+v", err, fe)
	}
}
