package upstream

import (
	"context"
	"crypto/rand"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// kind is one entry of the registry: how to build a provider of a type, and the
// defaults its preset fills in.
type kind struct {
	// oidc says the type is built on OpenID Connect discovery (IssuerURL applies).
	oidc   bool
	build  func(context.Context, settings) (Provider, error)
	preset preset
}

// registry maps every Type to its constructor and defaults. It is the one list of what
// New supports: adding a provider is adding a line here (and its preset).
var registry = map[Type]kind{
	TypeOAuth2:   {build: newOAuth2Provider, preset: genericOAuth2},
	TypeOIDC:     {oidc: true, build: newOIDCProvider, preset: genericOIDC},
	TypeGitHub:   {build: newGitHubProvider, preset: github},
	TypeDropbox:  {build: newOAuth2Provider, preset: dropbox},
	TypeGoogle:   {oidc: true, build: newOIDCProvider, preset: google},
	TypeLinkedIn: {oidc: true, build: newOIDCProvider, preset: linkedin},
	TypeSlack:    {oidc: true, build: newOIDCProvider, preset: slack},
}

// New validates c and returns the Provider it describes. For OIDC types it runs
// discovery against the issuer now, using ctx, so a misconfigured issuer fails at start
// rather than at the first login.
func New(ctx context.Context, c Config) (Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	k := registry[c.Type]
	return k.build(ctx, resolve(c, k.preset))
}

// NewAuthParams returns fresh per-flow values for AuthCodeURL and Exchange: a PKCE
// verifier (RFC 7636, 256 bits) and an OIDC nonce (130 bits). The caller stores them
// with the flow's state and passes the same values to Exchange.
func NewAuthParams() AuthParams {
	return AuthParams{Verifier: oauth2.GenerateVerifier(), Nonce: rand.Text()}
}

// defaultTimeout bounds each upstream request when the Config brings no client: an
// upstream that hangs must not hold a login (or a server goroutine) forever.
const defaultTimeout = 30 * time.Second

// settings is a Config with its preset's defaults applied: what the providers read.
type settings struct {
	typ                            Type
	clientID, clientSecret         string
	redirectURL                    string
	issuer                         string
	authURL, tokenURL, userInfoURL string
	apiURL                         string
	scopes                         []string
	pkce                           PKCEMode
	mapping                        claimMapping
	client                         *http.Client
	p                              preset
}

func resolve(c Config, p preset) settings {
	s := settings{
		typ:          c.Type,
		clientID:     c.ClientID,
		clientSecret: c.ClientSecret,
		redirectURL:  c.RedirectURL,
		issuer:       or(c.IssuerURL, p.issuer),
		authURL:      or(c.AuthorizationURL, p.authURL),
		tokenURL:     or(c.TokenURL, p.tokenURL),
		userInfoURL:  or(c.UserInfoURL, p.userInfoURL),
		apiURL:       or(c.APIURL, p.apiURL),
		scopes:       slices.Clone(p.scopes),
		pkce:         c.PKCE,
		mapping:      p.mapping,
		client:       boundedClient(c.HTTPClient),
		p:            p,
	}
	// A custom API (GitHub Enterprise Server) serves the user there too.
	if c.APIURL != "" && c.UserInfoURL == "" && p.apiURL != "" {
		s.userInfoURL = strings.TrimSuffix(c.APIURL, "/") + "/user"
	}
	if len(c.Scopes) > 0 {
		s.scopes = slices.Clone(c.Scopes)
	}
	if c.UserIDField != "" {
		s.mapping.subject = c.UserIDField
	}
	if c.EmailField != "" {
		s.mapping.email = c.EmailField
	}
	if c.NameField != "" {
		s.mapping.names = []string{c.NameField}
	}
	if c.GroupsField != "" {
		s.mapping.groups = c.GroupsField
	}
	return s
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// oauth2Config is the x/oauth2 client for s, with endpoints possibly discovered.
func (s settings) oauth2Config(authURL, tokenURL string, style oauth2.AuthStyle) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     s.clientID,
		ClientSecret: s.clientSecret,
		RedirectURL:  s.redirectURL,
		Scopes:       s.scopes,
		Endpoint:     oauth2.Endpoint{AuthURL: authURL, TokenURL: tokenURL, AuthStyle: style},
	}
}
