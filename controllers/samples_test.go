package controllers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
	"github.com/mcpauth/mcpauth/internal/testutil/kubeenv"
)

// TestSamplesRenderConfigsTheServerAccepts keeps config/samples honest beyond CRD
// validation (crd_validation_test.go): every sample provider renders a config the
// server parses, and every sample client an entry its provider's server accepts.
func TestSamplesRenderConfigsTheServerAccepts(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(kubeenv.RepoRoot(), "config", "samples", "oauth_*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("samples: %v, %d files", err, len(files))
	}
	providers := map[string]*oauthv1alpha1.OAuthProvider{}
	var clients []*oauthv1alpha1.MCPClient
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.Contains(string(data), "kind: OAuthProvider"):
			p := &oauthv1alpha1.OAuthProvider{}
			if err := yaml.UnmarshalStrict(data, p); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			p.Namespace = "default"
			providers[p.Name] = p
		case strings.Contains(string(data), "kind: MCPClient"):
			c := &oauthv1alpha1.MCPClient{}
			if err := yaml.UnmarshalStrict(data, c); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			clients = append(clients, c)
		}
	}
	for name, p := range providers {
		t.Run(name, func(t *testing.T) { parseRendered(t, p) })
	}
	for _, c := range clients {
		t.Run(c.Name, func(t *testing.T) {
			g := NewWithT(t)
			p := providers[c.Spec.ProviderRef.Name]
			g.Expect(p).NotTo(BeNil(), "no sample provider %s", c.Spec.ProviderRef.Name)
			cfg, err := renderConfig(p)
			g.Expect(err).NotTo(HaveOccurred())
			if approving(c) {
				_, err := approvalEntry(cfg, c)
				g.Expect(err).NotTo(HaveOccurred())
				return
			}
			secret := ""
			if confidential(c) {
				secret = "a-generated-secret-of-enough-entropy-for-a-test"
			}
			creds := buildCredentialsSecret(c, cfg.Issuer, "mcp_sample", secret)
			_, err = registryEntry(cfg, c, creds)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(creds.Type).To(Equal(corev1.SecretTypeOpaque))
		})
	}
}
