package integration

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	. "github.com/onsi/gomega"
	"golang.org/x/oauth2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
	"github.com/mcpauth/mcpauth/authserver/upstream/upstreamtest"
	"github.com/mcpauth/mcpauth/controllers"
	"github.com/mcpauth/mcpauth/internal/devkubelet"
	"github.com/mcpauth/mcpauth/internal/testutil/jwtcheck"
	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// clientRedirect is the MCP clients' loopback redirect URI; the test's browser stops
// there, so nothing needs to listen on it.
const clientRedirect = "http://127.0.0.1:38999/callback"

// TestThePiecesFit: the operator renders an OAuthProvider and MCPClients on a real
// apiserver; the authorization server starts from exactly the config and Secrets the
// operator rendered; a client registered through an MCPClient logs in through an
// upstream OIDC provider and gets a JWT signed with the operator's key (the kid of
// status.signingKeys.activeKeyID); a rotation on request publishes a new key at once
// and makes it sign a minute later (when the Secret has reached every replica), as
// status says, and tokens of both keys verify; a second MCPClient works without a
// restart; a deleted one stops working; an MCPClient with resources exchanges a token
// issued for them for the user's upstream token.
func TestThePiecesFit(t *testing.T) {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(15 * time.Second)
	g.SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()

	e := newOperatorEnv(t, ctx, g, "pieces-", upstreamtest.Options{
		User: &upstreamtest.User{Subject: "alice-42", Email: "alice@example.com", Name: "Alice"},
	})
	k8s, issuer, idp, ns := e.k8s, e.issuer, e.idp, e.ns
	provider := &oauthv1alpha1.OAuthProvider{
		ObjectMeta: metav1.ObjectMeta{Name: "corp", Namespace: ns},
		Spec: oauthv1alpha1.OAuthProviderSpec{
			Type:            oauthv1alpha1.ProviderOIDC,
			ClientID:        idp.ClientID,
			ClientSecretRef: oauthv1alpha1.SecretKeyReference{Name: "upstream", Key: "client-secret"},
			IssuerURL:       idp.Issuer,
			Server: oauthv1alpha1.ServerSpec{
				URL:             issuer,
				ScopesSupported: []string{"mcp:tools"},
				DisplayName:     "Corp tools",
			},
		},
	}
	g.Expect(k8s.Create(ctx, provider)).To(Succeed())
	agent := newMCPClient(ns, "agent", oauthv1alpha1.AuthMethodClientSecretBasic)
	g.Expect(k8s.Create(ctx, agent)).To(Succeed())

	// Act as the kubelet: wait for the Deployment, report it available, and run the
	// server from the files its volumes mount.
	deploy := e.deployment(g, ctx)
	pod := e.materialize(t, g, ctx)
	g.Expect(pod.Config.Issuer).To(Equal(issuer))
	g.Expect(pod.Config.ClientsSecret).NotTo(BeNil())
	// The signing keys and the admin token the operator generated reach the pod as
	// the files its config names, in the form the server reads.
	keysFile, err := os.ReadFile(pod.Config.Secrets.SigningKeysFile)
	g.Expect(err).NotTo(HaveOccurred())
	keys, err := config.ParseSigningKeys(keysFile)
	g.Expect(err).NotTo(HaveOccurred())
	_, ok := config.ActiveSigningKey(keys, time.Now())
	g.Expect(ok).To(BeTrue(), "a key signs from the start")
	adminToken, err := os.ReadFile(pod.Config.Secrets.AdminTokenFile)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(adminToken).To(HaveLen(43))
	e.serve(g, ctx, pod)
	markAvailable(g, ctx, k8s, deploy)

	g.Eventually(func() string {
		var p oauthv1alpha1.OAuthProvider
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(provider), &p)
		return readyReason(p.Status.Conditions)
	}).Should(Equal("True"))

	// The confidential client logs in with the credentials the operator wrote.
	creds := credentials(g, ctx, k8s, ns, "agent-credentials")
	g.Expect(creds["issuer-url"]).To(Equal(issuer))
	g.Expect(creds["metadata-url"]).To(Equal(issuer + "/.well-known/oauth-authorization-server"))
	var tok *oauth2.Token
	g.Eventually(func() error {
		tok, err = login(ctx, issuer, creds["client-id"], creds["client-secret"])
		return err
	}).Should(Succeed())
	g.Expect(tok.RefreshToken).NotTo(BeEmpty())
	info := introspect(g, issuer, creds["client-id"], creds["client-secret"], tok.AccessToken)
	g.Expect(info["active"]).To(BeTrue())
	g.Expect(info["sub"]).To(Equal("alice-42"))
	g.Expect(info["client_id"]).To(Equal(creds["client-id"]))
	g.Expect(info["scope"]).To(Equal("mcp:tools"))

	// The access token is a JWT signed with the operator's key: its kid is the one
	// status.signingKeys.activeKeyID reports, it verifies with an independent library
	// against the server's JWKS, and the file the pod reads says the same key signs.
	var p oauthv1alpha1.OAuthProvider
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(provider), &p)).To(Succeed())
	g.Expect(p.Status.SigningKeys).NotTo(BeNil())
	activeKID := p.Status.SigningKeys.ActiveKeyID
	g.Expect(activeKID).NotTo(BeEmpty())
	active, _ := config.ActiveSigningKey(keys, time.Now())
	g.Expect(active.KeyID).To(Equal(activeKID))
	g.Expect(kidOf(g, tok.AccessToken)).To(Equal(activeKID))
	claims, err := jwtcheck.Verify(jwks(g, issuer), tok.AccessToken, time.Now())
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(claims["iss"]).To(Equal(issuer))
	g.Expect(claims["sub"]).To(Equal("alice-42"))

	// A signing key rotation on request reaches the running pod's file in place, as
	// the kubelet brings it, with no rollout: the Deployment keeps its generation.
	generation := deploy.Generation
	requested := time.Now()
	patch := []byte(`{"metadata":{"annotations":{"oauth.mcpauth.dev/rotate-signing-key":"now"}}}`)
	g.Expect(k8s.Patch(ctx, provider, client.RawPatch(types.MergePatchType, patch))).To(Succeed())
	g.Eventually(func() (int, error) {
		if err := devkubelet.Refresh(ctx, k8s, pod); err != nil {
			return 0, err
		}
		b, err := os.ReadFile(pod.Config.Secrets.SigningKeysFile)
		if err != nil {
			return 0, err
		}
		keys, err := config.ParseSigningKeys(b)
		return len(keys), err
	}).Should(Equal(2))
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(deploy), deploy)).To(Succeed())
	g.Expect(deploy.Generation).To(Equal(generation), "a rotation does not roll the pods")
	// A rotation on request is for a suspected leak: the new key is published at once
	// and signs a minute later, once the Secret can have reached every replica; until
	// then the old key signs, as status says.
	g.Eventually(func() []string {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(provider), &p)
		return p.Status.SigningKeys.PublishedKeyIDs
	}).Should(HaveLen(2))
	g.Expect(p.Status.SigningKeys.PublishedKeyIDs[0]).To(Equal(activeKID))
	rotatedKID := p.Status.SigningKeys.PublishedKeyIDs[1]
	g.Expect(rotatedKID).NotTo(Equal(activeKID))
	g.Expect(p.Status.SigningKeys.ActiveKeyID).To(Equal(activeKID), "the new key does not sign yet")
	g.Eventually(func() []string {
		var kids []string
		for kid := range jwks(g, issuer) {
			kids = append(kids, kid)
		}
		return kids
	}).Should(ConsistOf(activeKID, rotatedKID))
	b, err := os.ReadFile(pod.Config.Secrets.SigningKeysFile)
	g.Expect(err).NotTo(HaveOccurred())
	keys, err = config.ParseSigningKeys(b)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(keys[1].KeyID).To(Equal(rotatedKID))
	g.Expect(keys[1].ActivateAt).To(And(
		BeTemporally(">=", requested.Add(time.Minute).Truncate(time.Second)),
		BeTemporally("<=", time.Now().Add(time.Minute+time.Second))),
		"the new key signs a minute after the request")
	g.Expect(keys[0].PublishUntil).To(BeTemporally("==", keys[1].ActivateAt.Add(16*time.Minute)),
		"the old key stays published until its last token has expired (15m), plus a minute")
	beforeActivation, err := login(ctx, issuer, creds["client-id"], creds["client-secret"])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kidOf(g, beforeActivation.AccessToken)).To(Equal(activeKID), "the old key signs until the new one activates")

	// A second client works within seconds, without restarting the server.
	ide := newMCPClient(ns, "ide", oauthv1alpha1.AuthMethodNone)
	start := time.Now()
	g.Expect(k8s.Create(ctx, ide)).To(Succeed())
	ideCreds := credentials(g, ctx, k8s, ns, "ide-credentials")
	g.Expect(ideCreds).NotTo(HaveKey("client-secret"))
	g.Eventually(func() error {
		_, err := login(ctx, issuer, ideCreds["client-id"], "")
		return err
	}).WithTimeout(5 * time.Second).Should(Succeed())
	t.Logf("the second MCPClient could log in %s after it was created", time.Since(start).Round(time.Millisecond))

	// Deleting an MCPClient removes its registration from the running server. Envtest
	// has no garbage collector, so its credentials Secret stays; the registry does not.
	g.Expect(k8s.Delete(ctx, ide)).To(Succeed())
	g.Eventually(func() int {
		return status(authorizeURL(issuer, ideCreds["client-id"], "challenge-challenge-challenge-challenge-123"))
	}).WithTimeout(5 * time.Second).Should(Equal(http.StatusBadRequest))

	// An MCP server registered with spec.resources exchanges the agent's token, issued
	// for its resource, for alice's upstream token (RFC 8693); the agent itself may not.
	const toolsResource = "https://tools.example.com/mcp"
	tools := newMCPClient(ns, "tools", oauthv1alpha1.AuthMethodClientSecretBasic)
	tools.Spec.Resources = []string{toolsResource}
	g.Expect(k8s.Create(ctx, tools)).To(Succeed())
	toolsCreds := credentials(g, ctx, k8s, ns, "tools-credentials")
	bound, err := login(ctx, issuer, creds["client-id"], creds["client-secret"], oauth2.SetAuthURLParam("resource", toolsResource))
	g.Expect(err).NotTo(HaveOccurred())
	var upstreamToken map[string]any
	g.Eventually(func() int {
		code, body := exchangeToken(issuer, toolsCreds["client-id"], toolsCreds["client-secret"], bound.AccessToken)
		upstreamToken = body
		return code
	}).WithTimeout(5 * time.Second).Should(Equal(http.StatusOK))
	g.Expect(upstreamToken["issued_token_type"]).To(Equal("urn:ietf:params:oauth:token-type:access_token"))
	at, _ := upstreamToken["access_token"].(string)
	g.Expect(idp.ValidAccessToken(at)).To(BeTrue(), "the exchanged token is a live token of the upstream")
	code, body := exchangeToken(issuer, creds["client-id"], creds["client-secret"], bound.AccessToken)
	g.Expect(code).To(Equal(http.StatusBadRequest))
	g.Expect(body["error"]).To(Equal("unauthorized_client"))

	// The minute after the rotation request is up (the steps above overlap it): the
	// new key signs, as status says, and tokens of both keys verify.
	g.Eventually(func() string {
		_ = k8s.Get(ctx, client.ObjectKeyFromObject(provider), &p)
		return p.Status.SigningKeys.ActiveKeyID
	}).WithTimeout(90 * time.Second).WithPolling(time.Second).Should(Equal(rotatedKID))
	g.Expect(time.Now()).To(BeTemporally(">=", keys[1].ActivateAt), "status names the new key once it signs, not before")
	g.Expect(p.Status.SigningKeys.PublishedKeyIDs).To(Equal([]string{activeKID, rotatedKID}))
	rotated, err := login(ctx, issuer, creds["client-id"], creds["client-secret"])
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(kidOf(g, rotated.AccessToken)).To(Equal(rotatedKID))
	for _, at := range []string{tok.AccessToken, beforeActivation.AccessToken, rotated.AccessToken} {
		_, err := jwtcheck.Verify(jwks(g, issuer), at, time.Now())
		g.Expect(err).NotTo(HaveOccurred(), "tokens of both keys verify after the rotation")
	}
}

// exchangeToken asks for the upstream token of subject (RFC 8693) as the client id.
func exchangeToken(issuer, id, secret, subject string) (int, map[string]any) {
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subject},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
	}
	req, _ := http.NewRequest(http.MethodPost, issuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func startOperator(t *testing.T, ctx context.Context) (client.Client, kubernetes.Interface) {
	t.Helper()
	env, err := kubeenv.New()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	// The operator's logs are not this test's subject; set, so that controller-runtime
	// does not complain of a logger never set once the test runs past 30 s.
	ctrl.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = oauthv1alpha1.AddToScheme(scheme)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		// Each test of the package starts its own operator in this one process.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupWithManager(ctx, mgr, controllers.Options{
		AuthServerImage: "mcpauth:test", ClientCounter: &controllers.AdminAPICounter{BaseURL: serverOnLoopback},
	}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return k8s, cs
}

func newMCPClient(ns, name string, method oauthv1alpha1.TokenEndpointAuthMethod) *oauthv1alpha1.MCPClient {
	return &oauthv1alpha1.MCPClient{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: oauthv1alpha1.MCPClientSpec{
			ProviderRef:             oauthv1alpha1.LocalObjectReference{Name: "corp"},
			ClientName:              name,
			RedirectURIs:            []string{"http://127.0.0.1/callback"},
			TokenEndpointAuthMethod: method,
			Trusted:                 true, // no consent page: this test is about the wiring
		},
	}
}

// markAvailable does what the kubelet and the deployment controller would.
func markAvailable(g *WithT, ctx context.Context, k8s client.Client, d *appsv1.Deployment) {
	g.Eventually(func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil {
			return err
		}
		replicas := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
			ReadyReplicas: replicas, AvailableReplicas: replicas,
			Conditions: []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
			},
		}
		return k8s.Status().Update(ctx, d)
	}).Should(Succeed())
}

func readyReason(conds []metav1.Condition) string {
	for _, c := range conds {
		if c.Type == oauthv1alpha1.ConditionReady {
			return string(c.Status)
		}
	}
	return ""
}

func credentials(g *WithT, ctx context.Context, k8s client.Client, ns, name string) map[string]string {
	var s corev1.Secret
	g.Eventually(func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s) }).Should(Succeed())
	out := map[string]string{}
	for k, v := range s.Data {
		out[k] = string(v)
	}
	return out
}

func authorizeURL(issuer, clientID, challenge string) string {
	return issuer + "/oauth/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {clientRedirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"xyz"},
	}.Encode()
}

// login runs the authorization-code flow with PKCE as an MCP client would, the
// browser being an http.Client with a cookie jar that follows redirects.
func login(ctx context.Context, issuer, clientID, secret string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, error) {
	conf := &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: clientRedirect,
		Endpoint: oauth2.Endpoint{AuthURL: issuer + "/oauth/authorize", TokenURL: issuer + "/oauth/token"},
	}
	if secret == "" {
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	}
	verifier := oauth2.GenerateVerifier()
	jar, _ := cookiejar.New(nil)
	var back *url.URL
	browser := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), clientRedirect) {
			back = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := browser.Get(conf.AuthCodeURL("state-1", append(opts, oauth2.S256ChallengeOption(verifier))...))
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if back == nil {
		return nil, fmt.Errorf("the flow ended at %s with %d: %.200s", resp.Request.URL, resp.StatusCode, body)
	}
	q := back.Query()
	if q.Get("iss") != issuer || q.Get("state") != "state-1" || q.Get("code") == "" {
		return nil, fmt.Errorf("bad authorization response %s", back)
	}
	return conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
}

func introspect(g *WithT, issuer, id, secret, token string) map[string]any {
	req, _ := http.NewRequest(http.MethodPost, issuer+"/oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	g.Expect(resp.StatusCode).To(Equal(http.StatusOK))
	var out map[string]any
	g.Expect(json.NewDecoder(resp.Body).Decode(&out)).To(Succeed())
	return out
}

// jwks fetches the server's JWKS, decoded by jwtcheck (the standard library, not
// the server's JOSE code).
func jwks(g *WithT, issuer string) map[string]crypto.PublicKey {
	resp, err := http.Get(issuer + config.PathJWKS)
	g.Expect(err).NotTo(HaveOccurred())
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	keys, err := jwtcheck.ParseJWKS(body)
	g.Expect(err).NotTo(HaveOccurred())
	return keys
}

// kidOf returns the kid of a JWT's protected header.
func kidOf(g *WithT, tok string) string {
	h, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	g.Expect(err).NotTo(HaveOccurred(), "not a JWT")
	var header struct {
		Kid string `json:"kid"`
	}
	g.Expect(json.Unmarshal(raw, &header)).To(Succeed())
	return header.Kid
}

func status(u string) int {
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
