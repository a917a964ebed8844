package controllers

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/authserver/config"
)

// fakeAdminAPI answers GET <path>/admin/clients/count for token with n.
func fakeAdminAPI(t *testing.T, path, token string, n int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != path+"/admin/clients/count" || r.Method != http.MethodGet:
			http.NotFound(w, r)
		case r.Header.Get("Authorization") != "Bearer "+token:
			w.WriteHeader(http.StatusUnauthorized)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"dynamic":` + strconv.Itoa(n) + `}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAdminAPICounterReadsTheCount(t *testing.T) {
	g := NewWithT(t)
	p := provider()
	p.Spec.Server.URL = "https://auth.example.com/tenant-a"
	srv := fakeAdminAPI(t, "/tenant-a", "admin-token", 7)
	c := &AdminAPICounter{BaseURL: func(*oauthv1alpha1.OAuthProvider) string { return srv.URL }}
	n, err := c.CountDynamicClients(t.Context(), p, "admin-token")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(n).To(Equal(7))

	_, err = c.CountDynamicClients(t.Context(), p, "wrong")
	g.Expect(err).To(MatchError(ContainSubstring("401")))
	p.Spec.Server.URL = "https://auth.example.com"
	_, err = c.CountDynamicClients(t.Context(), p, "admin-token")
	g.Expect(err).To(MatchError(ContainSubstring("404")), "the issuer's path is part of the admin API's")
}

// stubCounter answers with n or err, and counts its calls.
type stubCounter struct {
	n     int
	err   error
	calls int
}

func (s *stubCounter) CountDynamicClients(context.Context, *oauthv1alpha1.OAuthProvider, string) (int, error) {
	s.calls++
	return s.n, s.err
}

func TestDynamicClientsReachStatusOnlyFromAReadyServer(t *testing.T) {
	ready := &appsv1.Deployment{Status: appsv1.DeploymentStatus{ReadyReplicas: 1}}
	admin := &corev1.Secret{Data: map[string][]byte{adminTokenKey: []byte("token")}}
	enabled := func() *config.Config { c := config.Default(); return c }
	tests := []struct {
		name    string
		counter *stubCounter
		scope   providerScope
		want    *int32
		calls   int
	}{
		{"a ready server's count", &stubCounter{n: 3}, providerScope{deployment: ready, admin: admin, config: enabled()}, ptr.To[int32](3), 1},
		{"no ready replica: unknown", &stubCounter{n: 3},
			providerScope{deployment: &appsv1.Deployment{}, admin: admin, config: enabled()}, nil, 0},
		{"no Deployment: unknown", &stubCounter{n: 3}, providerScope{admin: admin, config: enabled()}, nil, 0},
		{"no admin token: unknown", &stubCounter{n: 3}, providerScope{deployment: ready, admin: &corev1.Secret{}, config: enabled()}, nil, 0},
		{"a blocked spec: unknown", &stubCounter{n: 3},
			providerScope{deployment: ready, admin: admin, config: enabled(), blocked: &blocker{reason: "x"}}, nil, 0},
		{"dynamic registration off: unknown", &stubCounter{n: 3},
			providerScope{deployment: ready, admin: admin, config: func() *config.Config { c := enabled(); c.DynamicRegistration.Enabled = false; return c }()}, nil, 0},
		{"an admin API that fails: unknown, and no error", &stubCounter{err: errors.New("connection refused")},
			providerScope{deployment: ready, admin: admin, config: enabled()}, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			r := &OAuthProviderReconciler{ClientCounter: tt.counter}
			s := tt.scope
			s.provider = provider()
			g.Expect(r.countDynamicClients(t.Context(), &s)).To(Succeed())
			g.Expect(s.dynamicClients).To(Equal(tt.want))
			g.Expect(tt.counter.calls).To(Equal(tt.calls))
			g.Expect(s.requeueAfter).To(Equal(dynamicClientsRefresh), "the count is read again later")
		})
	}
	t.Run("without a counter nothing is read and nothing requeued", func(t *testing.T) {
		g := NewWithT(t)
		s := providerScope{provider: provider(), deployment: ready, admin: admin, config: enabled(), requeueAfter: time.Hour}
		g.Expect((&OAuthProviderReconciler{}).countDynamicClients(t.Context(), &s)).To(Succeed())
		g.Expect(s.dynamicClients).To(BeNil())
		g.Expect(s.requeueAfter).To(Equal(time.Hour))
	})
	t.Run("a sooner requeue of another phase is kept", func(t *testing.T) {
		g := NewWithT(t)
		s := providerScope{provider: provider(), deployment: ready, admin: admin, config: enabled(), requeueAfter: time.Minute}
		g.Expect((&OAuthProviderReconciler{ClientCounter: &stubCounter{n: 1}}).countDynamicClients(t.Context(), &s)).To(Succeed())
		g.Expect(s.requeueAfter).To(Equal(time.Minute))
	})
}
