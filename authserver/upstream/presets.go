package upstream

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"golang.org/x/oauth2"
)

// preset holds a type's defaults. Every URL here can be overridden from Config; the
// rest (extra parameters, quirks) is what makes the preset worth having.
type preset struct {
	issuer, authURL, tokenURL, userInfoURL string
	// apiURL is the provider's REST API, where memberships are read (github).
	apiURL string
	// userInfoPOST: the user-info endpoint is an RPC that wants POST (Dropbox).
	userInfoPOST bool
	scopes       []string
	// authParams are extra authorization request parameters, e.g. to get a refresh
	// token from providers that only issue one when asked.
	authParams map[string]string
	// authStyle is how the token endpoint wants client credentials; the zero value
	// probes (header first, then body) and remembers what worked.
	authStyle oauth2.AuthStyle
	mapping   claimMapping
	// deadRefreshCodes are token-endpoint error codes, besides the standard
	// invalid_grant, that mean the refresh token is gone for good.
	deadRefreshCodes []string
	// commaScopes: the token response's scope is comma-separated (GitHub's
	// "repo,gist"), not space-separated as RFC 6749 §5.1 has it.
	commaScopes bool
	// enrich adds to the user-info claims what the main endpoint leaves out.
	enrich func(ctx context.Context, s settings, accessToken string, claims map[string]any) error
}

// Standard claim names, shared by the generic types and most presets.
var (
	oidcMapping = claimMapping{
		subject: "sub", email: "email", names: []string{"name", "preferred_username"}, groups: "groups",
	}
	// The generic OAuth 2.0 type has no standard user id field: Config must name it.
	genericOAuth2 = preset{
		mapping: claimMapping{email: "email", names: []string{"name", "preferred_username"}, groups: "groups"},
	}
	genericOIDC = preset{
		scopes:  []string{"openid", "email", "profile"},
		mapping: oidcMapping,
	}
)

// github is an OAuth app or GitHub app. Its /user "id" is a number, and stable where
// "login" is not (users can rename). "email" there is only the public one, so the
// primary verified address is read from /user/emails when it is missing. GitHub
// supports PKCE, and answers errors with HTTP 200, which x/oauth2 recognises.
var github = preset{
	authURL:          "https://github.com/login/oauth/authorize",
	tokenURL:         "https://github.com/login/oauth/access_token",
	userInfoURL:      "https://api.github.com/user",
	apiURL:           "https://api.github.com",
	scopes:           []string{"read:user", "user:email"},
	authStyle:        oauth2.AuthStyleInParams,
	mapping:          claimMapping{subject: "id", email: "email", names: []string{"login"}},
	deadRefreshCodes: []string{"bad_refresh_token"},
	commaScopes:      true,
	enrich:           githubPrimaryEmail,
}

// google asks for offline access: Google issues a refresh token only with
// access_type=offline, and only on first consent unless prompt=consent forces it, which
// a server that may have lost the old one needs. include_granted_scopes=true makes an
// incremental authorization (a step-up asking for one more scope) return a token for
// every scope the user granted, not only the new one.
var google = preset{
	issuer:     "https://accounts.google.com",
	scopes:     []string{"openid", "email", "profile"},
	authParams: map[string]string{"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
	mapping:    oidcMapping,
}

// linkedin is "Sign In with LinkedIn using OpenID Connect"; its discovery document
// lists client_secret_post, which discovery picks up.
var linkedin = preset{
	issuer:  "https://www.linkedin.com/oauth",
	scopes:  []string{"openid", "profile", "email"},
	mapping: oidcMapping,
}

// slack is "Sign in with Slack". Slack answers errors with HTTP 200 and ok=false; a
// rotated-out refresh token comes back as invalid_refresh_token.
var slack = preset{
	issuer:           "https://slack.com",
	scopes:           []string{"openid", "profile", "email"},
	mapping:          oidcMapping,
	deadRefreshCodes: []string{"invalid_refresh_token"},
}

// dropbox issues short-lived access tokens and a refresh token only with
// token_access_type=offline. Its user info is an RPC taking POST with no body.
var dropbox = preset{
	authURL:      "https://www.dropbox.com/oauth2/authorize",
	tokenURL:     "https://api.dropboxapi.com/oauth2/token",
	userInfoURL:  "https://api.dropboxapi.com/2/users/get_current_account",
	userInfoPOST: true,
	authParams:   map[string]string{"token_access_type": "offline"},
	authStyle:    oauth2.AuthStyleInHeader,
	mapping: claimMapping{
		subject: "account_id", email: "email", names: []string{"name.display_name"},
	},
}

// githubPrimaryEmail fills in "email" from GitHub's /user/emails when /user shows no
// public address. A 403 or 404 (a GitHub app without the email permission, or a
// token without user:email) leaves the email empty rather than failing the login.
func githubPrimaryEmail(ctx context.Context, s settings, accessToken string, claims map[string]any) error {
	if e, _ := claims["email"].(string); e != "" {
		return nil
	}
	emailsURL := strings.TrimSuffix(s.userInfoURL, "/") + "/emails"
	body, status, err := fetch(ctx, s.client, http.MethodGet, emailsURL, accessToken)
	if status == http.StatusForbidden || status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read github emails: %w", err)
	}
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if err := decodeJSON(body, &emails); err != nil {
		return fmt.Errorf("read github emails: %w", err)
	}
	for _, e := range emails {
		if e.Primary && e.Verified {
			claims["email"] = e.Email
			claims["email_verified"] = true
			return nil
		}
	}
	return nil
}
