package controllers

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/adminapi"
)

// dynamicClientsRefresh is how often status.dynamicClients is read again while
// nothing else makes the provider reconcile.
const dynamicClientsRefresh = 5 * time.Minute

// dynamicClientsTimeout bounds one read, so a server that hangs cannot hold a
// reconcile.
const dynamicClientsTimeout = 3 * time.Second

// ClientCounter reads how many dynamic registrations an OAuthProvider's running server
// holds. The operator never reads the token store; it asks the server.
type ClientCounter interface {
	CountDynamicClients(ctx context.Context, p *oauthv1alpha1.OAuthProvider, adminToken string) (int, error)
}

// AdminAPICounter asks the server's admin API (GET /admin/clients/count, package
// authserver/adminapi, the wire format alone) through the provider's Service, with the
// admin token the operator keeps in Secret X-authserver-admin. Over TLS (spec.server.tls)
// it verifies the server's certificate for the issuer's host name against the system
// roots: a certificate it cannot verify (a private CA) leaves the count unknown rather
// than send the admin token to a peer it could not check.
type AdminAPICounter struct {
	// HTTPClient makes the calls; nil means one with dynamicClientsTimeout.
	HTTPClient *http.Client
	// BaseURL returns where p's server answers, without the issuer's path; nil means
	// its Service: http://X-authserver.NS.svc, or https:// with server.tls. Tests
	// point it at an httptest server.
	BaseURL func(p *oauthv1alpha1.OAuthProvider) string
}

// CountDynamicClients implements ClientCounter.
func (c *AdminAPICounter) CountDynamicClients(ctx context.Context, p *oauthv1alpha1.OAuthProvider, adminToken string) (int, error) {
	issuer, err := url.Parse(p.Spec.Server.URL)
	if err != nil {
		return 0, fmt.Errorf("issuer URL: %w", err)
	}
	base := "http://" + serverName(p) + "." + p.Namespace + ".svc"
	if p.Spec.Server.TLS != nil {
		base = "https://" + serverName(p) + "." + p.Namespace + ".svc"
	}
	if c.BaseURL != nil {
		base = c.BaseURL(p)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+issuer.Path+adminapi.PathClientCount, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Accept", "application/json")
	hc := c.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: dynamicClientsTimeout}
	}
	if p.Spec.Server.TLS != nil && c.BaseURL == nil {
		// The Service's name is not in the certificate; the issuer's host is.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = &tls.Config{ServerName: issuer.Hostname(), MinVersion: tls.VersionTLS12}
		t.DisableKeepAlives = true
		copied := *hc
		copied.Transport = t
		hc = &copied
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("admin API answered %s", resp.Status)
	}
	var out adminapi.ClientCount
	if err := json.Unmarshal(body, &out); err != nil {
		return 0, fmt.Errorf("admin API answer: %w", err)
	}
	if out.Dynamic < 0 {
		return 0, errors.New("admin API answered a negative count")
	}
	return out.Dynamic, nil
}

// countDynamicClients reads status.dynamicClients from the running server, when there
// is a counter, a ready server and the admin token. Anything else leaves the count
// unknown (absent from status), and a failed read is logged, never an error: the
// server's own health is what the conditions report.
func (r *OAuthProviderReconciler) countDynamicClients(ctx context.Context, s *providerScope) error {
	if r.ClientCounter == nil {
		return nil
	}
	if s.requeueAfter == 0 || s.requeueAfter > dynamicClientsRefresh {
		s.requeueAfter = dynamicClientsRefresh
	}
	token := ""
	if s.admin != nil {
		token = string(s.admin.Data[adminTokenKey])
	}
	if s.blocked != nil || s.deployment == nil || s.deployment.Status.ReadyReplicas == 0 || token == "" || !s.config.DynamicRegistration.Enabled {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, dynamicClientsTimeout)
	defer cancel()
	n, err := r.ClientCounter.CountDynamicClients(ctx, s.provider, token)
	if err != nil {
		ctrl.LoggerFrom(ctx).V(1).Info("dynamic registrations unknown: the server's admin API could not be read", "error", err.Error())
		return nil
	}
	v := int32(min(n, 1<<31-1))
	s.dynamicClients = &v
	return nil
}
