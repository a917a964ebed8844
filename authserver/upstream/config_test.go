package upstream

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// fieldsOf returns the Field of every *FieldError joined in err, sorted.
func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var fields []string
	for _, e := range errs {
		var fe *FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("error %q is not a *FieldError", e)
		}
		fields = append(fields, fe.Field)
	}
	slices.Sort(fields)
	return fields
}

func TestConfigValidate(t *testing.T) {
	base := func(typ Type) Config {
		return Config{
			Type: typ, ClientID: "id", ClientSecret: "secret",
			RedirectURL: "https://auth.example.com/oauth/callback",
		}
	}
	oauth2 := func() Config {
		c := base(TypeOAuth2)
		c.AuthorizationURL = "https://idp.example.com/authorize"
		c.TokenURL = "https://idp.example.com/token"
		c.UserInfoURL = "https://idp.example.com/me"
		c.UserIDField = "id"
		return c
	}
	oidc := func() Config {
		c := base(TypeOIDC)
		c.IssuerURL = "https://idp.example.com"
		return c
	}
	tests := []struct {
		name   string
		config Config
		fields []string // the fields the error must name, sorted; nil: valid
		text   string   // a fragment the message must contain
	}{
		{name: "a minimal github preset is valid", config: base(TypeGitHub)},
		{name: "a minimal google preset is valid", config: base(TypeGoogle)},
		{name: "a minimal linkedin preset is valid", config: base(TypeLinkedIn)},
		{name: "a minimal slack preset is valid", config: base(TypeSlack)},
		{name: "a minimal dropbox preset is valid", config: base(TypeDropbox)},
		{name: "an oidc issuer is valid", config: oidc()},
		{name: "a complete oauth2 server is valid", config: oauth2()},
		{name: "loopback http is fine for tests", config: func() Config {
			c := oidc()
			c.IssuerURL, c.RedirectURL = "http://127.0.0.1:5556", "http://localhost:8080/cb"
			return c
		}()},
		{name: "http elsewhere is fine when explicitly allowed", config: func() Config {
			c := oidc()
			c.IssuerURL, c.InsecureAllowHTTP = "http://dex.dex.svc:5556", true
			return c
		}()},
		{name: "the empty config names every required field",
			config: Config{}, fields: []string{"ClientID", "ClientSecret", "RedirectURL", "Type"}},
		{name: "an unknown type is named with the known ones",
			config: func() Config { c := base("okta"); return c }(),
			fields: []string{"Type"}, text: `"okta" is unknown (one of dropbox, github, google, linkedin, oauth2, oidc, slack)`},
		{name: "a missing client id is named",
			config: func() Config { c := base(TypeGitHub); c.ClientID = ""; return c }(),
			fields: []string{"ClientID"}, text: "ClientID is required"},
		{name: "a missing client secret is named",
			config: func() Config { c := base(TypeGitHub); c.ClientSecret = ""; return c }(),
			fields: []string{"ClientSecret"}},
		{name: "a missing redirect URL is named",
			config: func() Config { c := base(TypeGitHub); c.RedirectURL = ""; return c }(),
			fields: []string{"RedirectURL"}},
		{name: "oidc needs an issuer",
			config: base(TypeOIDC), fields: []string{"IssuerURL"}, text: `IssuerURL is required for type "oidc"`},
		{name: "oauth2 needs every endpoint and the user id field",
			config: base(TypeOAuth2),
			fields: []string{"AuthorizationURL", "TokenURL", "UserIDField", "UserInfoURL"}},
		{name: "oauth2 without a token URL names just that",
			config: func() Config { c := oauth2(); c.TokenURL = ""; return c }(),
			fields: []string{"TokenURL"}},
		{name: "an issuer on a plain OAuth 2.0 preset is refused, not ignored",
			config: func() Config { c := base(TypeGitHub); c.IssuerURL = "https://github.com"; return c }(),
			fields: []string{"IssuerURL"}, text: `not used by type "github"`},
		{name: "plain http to a remote host is refused",
			config: func() Config { c := oauth2(); c.TokenURL = "http://idp.example.com/token"; return c }(),
			fields: []string{"TokenURL"}, text: "must use https"},
		{name: "a relative URL is refused",
			config: func() Config { c := base(TypeGitHub); c.UserInfoURL = "/user"; return c }(),
			fields: []string{"UserInfoURL"}, text: "not an absolute URL"},
		{name: "another scheme is refused",
			config: func() Config { c := oidc(); c.IssuerURL = "ftp://idp.example.com"; return c }(),
			fields: []string{"IssuerURL"}},
		{name: "a scope with a space is refused",
			config: func() Config { c := base(TypeGitHub); c.Scopes = []string{"repo", "read:user user:email"}; return c }(),
			fields: []string{"Scopes"}, text: "entry 1"},
		{name: "an empty claim path segment is refused",
			config: func() Config { c := oauth2(); c.UserIDField = "data..id"; return c }(),
			fields: []string{"UserIDField"}},
		{name: "an unknown PKCE mode is refused",
			config: func() Config { c := oidc(); c.PKCE = "sometimes"; return c }(),
			fields: []string{"PKCE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.config.Validate()
			if got := fieldsOf(t, err); !slices.Equal(got, tt.fields) {
				t.Fatalf("Validate() named %v, want %v (error: %v)", got, tt.fields, err)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.text)
			}
		})
	}
}

func TestTypesListsTheRegistry(t *testing.T) {
	want := []Type{TypeDropbox, TypeGitHub, TypeGoogle, TypeLinkedIn, TypeOAuth2, TypeOIDC, TypeSlack}
	if got := Types(); !slices.Equal(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}
}

func TestNewRefusesAnInvalidConfigBeforeAnyRequest(t *testing.T) {
	p, err := New(t.Context(), Config{Type: TypeOIDC, ClientID: "c", RedirectURL: "https://a.example.com/cb"})
	var fe *FieldError
	if p != nil || !errors.As(err, &fe) {
		t.Fatalf("New() = %v, %v; want a *FieldError", p, err)
	}
	if got := fieldsOf(t, err); !slices.Equal(got, []string{"ClientSecret", "IssuerURL"}) {
		t.Errorf("New() named %v", got)
	}
}
