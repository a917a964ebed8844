package authserver

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mcpauth/mcpauth/authserver/adminapi"
	"github.com/mcpauth/mcpauth/authserver/clientpolicy"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/store"
)

// countingCIMD counts fetches, so a test can tell a refusal before the fetch.
type countingCIMD struct {
	docs    fakeCIMD
	fetches atomic.Int32
}

func (c *countingCIMD) Fetch(ctx context.Context, id string) (*ClientMetadataDocument, error) {
	c.fetches.Add(1)
	return c.docs.Fetch(ctx, id)
}

func withPolicy(t *testing.T, p config.ClientPolicy) func(*Options) {
	t.Helper()
	pol, err := clientpolicy.New(p)
	if err != nil {
		t.Fatal(err)
	}
	return func(o *Options) { o.ClientPolicy = pol }
}

// wantPage checks an HTML answer that must not redirect anywhere.
func wantPage(t *testing.T, rec interface {
	Result() *http.Response
}, status int, text string) string {
	t.Helper()
	res := rec.Result()
	body := readAll(t, res)
	if res.StatusCode != status || res.Header.Get("Location") != "" {
		t.Fatalf("status %d (Location %q), want %d; body: %s", res.StatusCode, res.Header.Get("Location"), status, body)
	}
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, text) {
		t.Fatalf("page does not say %q:\n%s", text, body)
	}
	return body
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestMetadataDocumentFromAnUnlistedDomainIsRefused(t *testing.T) {
	const listed = "https://app.trusted.example/client.json"
	const unlisted = "https://evil.example/client.json"
	docs := &countingCIMD{docs: fakeCIMD{
		listed:   {ClientID: listed, ClientName: "Listed", RedirectURIs: []string{webRedirect}},
		unlisted: {ClientID: unlisted, ClientName: "Evil", RedirectURIs: []string{webRedirect}},
	}}
	e := newEnv(t, func(o *Options) { o.CIMD = docs }, withPolicy(t, config.ClientPolicy{MetadataDocumentDomains: []string{"*.trusted.example"}}))

	rec := e.browser().get(authorizeURL(authzQuery(unlisted, webRedirect, newPKCE())))
	wantPage(t, rec, http.StatusForbidden, "does not accept applications whose client ID is on evil.example")
	if n := docs.fetches.Load(); n != 0 {
		t.Errorf("the unlisted document was fetched %d times; it must be refused before any request", n)
	}
	// The token endpoint answers the RFC error: invalid_client (RFC 6749 §5.2).
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"mcp_ac_x"}, "redirect_uri": {webRedirect}, "code_verifier": {newPKCE().verifier}, "client_id": {unlisted}}
	rec = e.postForm(pathToken, form)
	body := rec.Body.String()
	wantOAuthError(t, rec, http.StatusUnauthorized, "invalid_client")
	if !strings.Contains(body, "not accepted") {
		t.Errorf("invalid_client without the reason: %s", body)
	}
	if m := e.get("/metrics").Body.String(); !strings.Contains(m, `mcpauth_clients_refused_total{reason="metadata_document_domain"} 2`) {
		t.Errorf("the refusals are not counted:\n%s", grepLines(m, "mcpauth_clients_refused_total"))
	}
	// A listed domain logs in.
	p := newPKCE()
	code := e.code(listed, webRedirect, p, nil)
	if tok := e.exchange(listed, webRedirect, code, p); tok.AccessToken == "" {
		t.Fatal("no token for a listed domain")
	}
}

func TestRedirectURIPatterns(t *testing.T) {
	const doc = "https://tools.example.org/client.json"
	docs := fakeCIMD{doc: {ClientID: doc, RedirectURIs: []string{"http://127.0.0.1/cb", "https://evil.example/cb"}}}
	pol := config.ClientPolicy{RedirectURIPatterns: []string{"http://127.0.0.1/*", "https://*.example.com/*"}}
	e := newEnv(t, func(o *Options) { o.CIMD = docs }, withPolicy(t, pol))

	t.Run("a registration with a URI outside the patterns gets invalid_redirect_uri", func(t *testing.T) {
		rec := e.postJSON(pathRegister, `{"redirect_uris":["http://127.0.0.1/cb","https://evil.example/cb"],"token_endpoint_auth_method":"none"}`)
		body := rec.Body.String()
		wantOAuthError(t, rec, http.StatusBadRequest, "invalid_redirect_uri")
		if !strings.Contains(body, "https://evil.example/cb") {
			t.Errorf("the error does not name the URI: %s", body)
		}
	})
	t.Run("a registration inside the patterns works, and authorize still matches exactly", func(t *testing.T) {
		r := e.register(`{"redirect_uris":["http://127.0.0.1/callback","https://app.example.com/oauth/cb"],"token_endpoint_auth_method":"none"}`)
		p := newPKCE()
		code := e.code(r.ClientID, "https://app.example.com/oauth/cb", p, nil)
		e.exchange(r.ClientID, "https://app.example.com/oauth/cb", code, p)
		// Another URI the pattern would allow is still not registered.
		rec := e.browser().get(authorizeURL(authzQuery(r.ClientID, "https://app.example.com/oauth/other", newPKCE())))
		wantPage(t, rec, http.StatusBadRequest, "not registered")
	})
	t.Run("a metadata document listing a URI outside the patterns is refused with a page", func(t *testing.T) {
		rec := e.browser().get(authorizeURL(authzQuery(doc, "http://127.0.0.1/cb", newPKCE())))
		wantPage(t, rec, http.StatusForbidden, "https://evil.example/cb, which this server does not allow")
	})
	t.Run("pre-registered clients are not restricted", func(t *testing.T) {
		p := newPKCE()
		code := e.code(trustedClient.ID, webRedirect, p, nil)
		e.exchange(trustedClient.ID, webRedirect, code, p)
	})
}

func TestMaxScopePerKind(t *testing.T) {
	const doc = "https://tools.example.org/client.json"
	docs := fakeCIMD{doc: {ClientID: doc, RedirectURIs: []string{webRedirect}}}
	pol := config.ClientPolicy{MaxScopes: config.MaxScopes{
		PreRegistered: []string{"read", "write"}, Dynamic: []string{"read"}, MetadataDocument: []string{"write"},
	}}
	e := newEnv(t, func(o *Options) { o.CIMD = docs }, withPolicy(t, pol))
	scope := func(s string) url.Values { return url.Values{"scope": {s}} }

	t.Run("a pre-registered client gets what it asks within its bound", func(t *testing.T) {
		p := newPKCE()
		code := e.code(trustedClient.ID, webRedirect, p, scope("read write"))
		if tok := e.exchange(trustedClient.ID, webRedirect, code, p); tok.Scope != "read write" {
			t.Errorf("scope %q", tok.Scope)
		}
	})
	t.Run("a pre-registered client asking beyond its bound is narrowed, and the token response says so", func(t *testing.T) {
		p := newPKCE()
		code := e.code(trustedClient.ID, webRedirect, p, scope("read offline_access"))
		if tok := e.exchange(trustedClient.ID, webRedirect, code, p); tok.Scope != "read" {
			t.Errorf("scope %q, want read (offline_access dropped)", tok.Scope)
		}
	})
	t.Run("a request with nothing within the bound is refused with invalid_scope", func(t *testing.T) {
		back := location(t, e.browser().get(authorizeURL(mergeQuery(authzQuery(trustedClient.ID, webRedirect, newPKCE()), scope("offline_access")))))
		if back.Query().Get("error") != "invalid_scope" || !strings.Contains(back.Query().Get("error_description"), "pre-registered") {
			t.Errorf("redirect %s, want invalid_scope naming the kind", back)
		}
	})
	t.Run("a dynamic registration asking for more is registered narrowed", func(t *testing.T) {
		r := e.register(`{"redirect_uris":["` + webRedirect + `"],"token_endpoint_auth_method":"none","scope":"read write"}`)
		if r.Scope != "read" {
			t.Errorf("registered scope %q, want read", r.Scope)
		}
		rec := e.postJSON(pathRegister, `{"redirect_uris":["`+webRedirect+`"],"token_endpoint_auth_method":"none","scope":"write"}`)
		wantOAuthError(t, rec, http.StatusBadRequest, "invalid_client_metadata")
	})
	t.Run("a dynamic client registered without scope is bounded at authorize", func(t *testing.T) {
		r := e.register(`{"redirect_uris":["` + webRedirect + `"],"token_endpoint_auth_method":"none"}`)
		p := newPKCE()
		code := e.code(r.ClientID, webRedirect, p, scope("read write"))
		if tok := e.exchange(r.ClientID, webRedirect, code, p); tok.Scope != "read" {
			t.Errorf("scope %q, want read", tok.Scope)
		}
	})
	t.Run("a metadata-document client gets its kind's bound", func(t *testing.T) {
		p := newPKCE()
		code := e.code(doc, webRedirect, p, scope("read write"))
		if tok := e.exchange(doc, webRedirect, code, p); tok.Scope != "write" {
			t.Errorf("scope %q, want write", tok.Scope)
		}
	})
}

func mergeQuery(q url.Values, extra url.Values) url.Values {
	for k, v := range extra {
		q[k] = v
	}
	return q
}

// approvalEnv is a server in approval mode with a metadata-document client.
const approvalDoc = "https://tools.example.org/client.json"

func approvalEnv(t *testing.T, mods ...func(*Options)) *env {
	docs := fakeCIMD{approvalDoc: {ClientID: approvalDoc, ClientName: "Doc Tool", RedirectURIs: []string{webRedirect}}}
	mods = append([]func(*Options){withAdmin, func(o *Options) { o.CIMD = docs }, withPolicy(t, config.ClientPolicy{RequireApproval: true})}, mods...)
	return newEnv(t, mods...)
}

func (e *env) decide(clientID, decision string) (*http.Response, adminapi.ApprovalResult) {
	e.t.Helper()
	rec := e.adminCall(http.MethodPost, adminapi.PathApprovals, testAdminToken, `{"client_id":"`+clientID+`","decision":"`+decision+`"}`)
	var out adminapi.ApprovalResult
	if rec.Code == http.StatusOK {
		decodeJSON(e.t, rec.Body, &out)
	}
	return rec.Result(), out
}

func (e *env) approvals(status string) []adminapi.Approval {
	e.t.Helper()
	rec := e.adminCall(http.MethodGet, adminapi.PathApprovals+"?status="+status, testAdminToken, "")
	if rec.Code != http.StatusOK {
		e.t.Fatalf("list approvals: %d %s", rec.Code, rec.Body.String())
	}
	var out adminapi.ApprovalList
	decodeJSON(e.t, rec.Body, &out)
	return out.Approvals
}

func TestApprovalModeHoldsANewClientUntilApproved(t *testing.T) {
	for _, tc := range []struct{ name, kind string }{{"dynamic", "dynamic"}, {"metadata document", "metadata-document"}} {
		t.Run(tc.name, func(t *testing.T) {
			e := approvalEnv(t)
			id := approvalDoc
			if tc.kind == "dynamic" {
				id = e.register(`{"client_name":"Dyn Tool","redirect_uris":["` + webRedirect + `"],"token_endpoint_auth_method":"none"}`).ClientID
			}
			p := newPKCE()
			q := authzQuery(id, webRedirect, p)
			b := e.browser()

			// Held: the waiting page, which reloads itself; nothing goes upstream.
			for range 2 {
				rec := b.get(authorizeURL(q))
				body := wantPage(t, rec, http.StatusForbidden, "Waiting for approval")
				if !strings.Contains(body, id) || rec.Header().Get("Refresh") == "" {
					t.Errorf("the waiting page names no client ID or does not refresh: %v\n%s", rec.Header(), body)
				}
			}
			e.up.mu.Lock()
			sentUpstream := e.up.lastParams.Verifier != ""
			e.up.mu.Unlock()
			if sentUpstream {
				t.Error("the browser was sent upstream before approval")
			}
			pending := e.approvals("pending")
			if len(pending) != 1 || pending[0].ClientID != id || pending[0].Kind != tc.kind || pending[0].RedirectURIs[0] != webRedirect {
				t.Fatalf("pending approvals %+v", pending)
			}
			if gs := e.adminGrants("?client=" + url.QueryEscape(id)); len(gs) != 0 {
				t.Fatalf("grants before approval: %+v", gs)
			}

			res, out := e.decide(id, adminapi.DecisionApprove)
			if res.StatusCode != http.StatusOK || out.Approval.Status != "approved" || out.Approval.DecidedBy == "" {
				t.Fatalf("approve: %d %+v", res.StatusCode, out)
			}
			if len(e.approvals("pending")) != 0 {
				t.Error("still listed as pending after approval")
			}
			// The same request, reloaded by the waiting page, now completes.
			back := b.login(t, q)
			code := back.Query().Get("code")
			if code == "" {
				t.Fatalf("no code after approval: %s", back)
			}
			if tok := e.exchange(id, webRedirect, code, p); tok.AccessToken == "" {
				t.Fatal("no token after approval")
			}
		})
	}
}

func TestApprovalDeniedClientGetsNothing(t *testing.T) {
	e := approvalEnv(t)
	r := e.register(`{"client_name":"Dyn Tool","redirect_uris":["` + webRedirect + `"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`)
	e.decide(r.ClientID, adminapi.DecisionApprove)
	p := newPKCE()
	tok := e.exchange(r.ClientID, webRedirect, e.code(r.ClientID, webRedirect, p, nil), p)

	// A login in flight when the client is denied stops at the callback, before a code.
	b := e.browser()
	rec := b.get(authorizeURL(authzQuery(r.ClientID, webRedirect, newPKCE())))
	form := consentForm(t, rec.Body.String())
	form.Set("decision", "approve")
	up := location(t, b.postForm(testIssuer+pathConsent, form))

	res, out := e.decide(r.ClientID, adminapi.DecisionDeny)
	if res.StatusCode != http.StatusOK || out.Approval.Status != "denied" || out.Revoked != 1 {
		t.Fatalf("deny: %d %+v", res.StatusCode, out)
	}
	cb := url.Values{"code": {goodUpstreamCode}, "state": {up.Query().Get("state")}}
	wantPage(t, b.get(testIssuer+DefaultCallbackPath+"?"+cb.Encode()), http.StatusForbidden, "has not allowed")
	// Its earlier tokens were revoked with the denial.
	if got := e.introspect(tok.AccessToken); got["active"] != false {
		t.Errorf("the denied client's token is still active: %v", got)
	}
	form = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {r.ClientID}}
	wantOAuthError(t, e.postForm(pathToken, form), http.StatusBadRequest, "invalid_grant")
	// New logins see the refusal at once.
	wantPage(t, e.browser().get(authorizeURL(authzQuery(r.ClientID, webRedirect, newPKCE()))), http.StatusForbidden, "has not allowed")
	// And approving again lifts it.
	e.decide(r.ClientID, adminapi.DecisionApprove)
	e.code(r.ClientID, webRedirect, newPKCE(), nil)
}

func TestRegistryApprovalApprovesAClient(t *testing.T) {
	reg, err := NewStaticClients(trustedClient)
	if err != nil {
		t.Fatal(err)
	}
	e := approvalEnv(t, func(o *Options) { o.Clients = reg })
	wantPage(t, e.browser().get(authorizeURL(authzQuery(approvalDoc, webRedirect, newPKCE()))), http.StatusForbidden, "Waiting for approval")

	// The operator lists the client in its registry (an MCPClient with spec.approveClientID).
	reg.ReplaceApprovals([]string{approvalDoc})
	p := newPKCE()
	code := e.code(approvalDoc, webRedirect, p, nil)
	e.exchange(approvalDoc, webRedirect, code, p)
	if got := e.approvals("pending"); len(got) != 0 {
		t.Errorf("still pending once the registry approved it: %+v", got)
	}

	// An administrator's denial in the store stands over the registry.
	e.decide(approvalDoc, adminapi.DecisionDeny)
	wantPage(t, e.browser().get(authorizeURL(authzQuery(approvalDoc, webRedirect, newPKCE()))), http.StatusForbidden, "has not allowed")
	// Removing the entry takes the approval away again.
	e.decide(approvalDoc, adminapi.DecisionApprove)
	reg.ReplaceApprovals(nil)
	e.code(approvalDoc, webRedirect, newPKCE(), nil) // still approved in the store
	if err := e.store.Store.DeleteApproval(t.Context(), approvalDoc); err != nil {
		t.Fatal(err)
	}
	wantPage(t, e.browser().get(authorizeURL(authzQuery(approvalDoc, webRedirect, newPKCE()))), http.StatusForbidden, "Waiting for approval")
}

func TestApprovalModeLeavesPreRegisteredClientsAlone(t *testing.T) {
	e := approvalEnv(t)
	e.issue()
	if got := e.approvals(""); len(got) != 0 {
		t.Errorf("approvals recorded for a pre-registered client: %+v", got)
	}
}

func TestAdminApprovalErrors(t *testing.T) {
	e := approvalEnv(t)
	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"a pre-registered client needs no approval", http.MethodPost, adminapi.PathApprovals, `{"client_id":"public-app","decision":"approve"}`, http.StatusBadRequest},
		{"an unknown dynamic client", http.MethodPost, adminapi.PathApprovals, `{"client_id":"mcp_client_nope","decision":"approve"}`, http.StatusNotFound},
		{"an unknown decision", http.MethodPost, adminapi.PathApprovals, `{"client_id":"` + approvalDoc + `","decision":"maybe"}`, http.StatusBadRequest},
		{"no client ID", http.MethodPost, adminapi.PathApprovals, `{"decision":"approve"}`, http.StatusBadRequest},
		{"unknown fields", http.MethodPost, adminapi.PathApprovals, `{"client_id":"x","decision":"approve","why":1}`, http.StatusBadRequest},
		{"a bad status filter", http.MethodGet, adminapi.PathApprovals + "?status=maybe", "", http.StatusBadRequest},
		{"a wrong method", http.MethodDelete, adminapi.PathApprovals, "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := e.adminCall(tt.method, tt.path, testAdminToken, tt.body)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), `"error"`) {
				t.Errorf("%d %s, want %d with an error", rec.Code, rec.Body.String(), tt.status)
			}
		})
	}
	if rec := e.adminCall(http.MethodGet, adminapi.PathApprovals, "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("without the admin token: %d", rec.Code)
	}
	// A metadata-document client may be approved before it ever asks.
	if res, out := e.decide(approvalDoc, adminapi.DecisionApprove); res.StatusCode != http.StatusOK || out.Approval.Kind != "metadata-document" {
		t.Errorf("approve ahead: %d %+v", res.StatusCode, out)
	}
	e.code(approvalDoc, webRedirect, newPKCE(), nil)

	// Outside approval mode a denial would not hold, so it is refused.
	off := newEnv(t, withAdmin)
	r := off.register(`{"redirect_uris":["` + webRedirect + `"],"token_endpoint_auth_method":"none"}`)
	if res, _ := off.decide(r.ClientID, adminapi.DecisionDeny); res.StatusCode != http.StatusConflict {
		t.Errorf("deny outside approval mode: %d, want 409", res.StatusCode)
	}
	if got := off.approvals(string(store.ApprovalDenied)); len(got) != 0 {
		t.Errorf("a denial was recorded: %+v", got)
	}
}
