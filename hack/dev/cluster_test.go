package main

import (
	"path/filepath"
	"testing"
)

// The cluster mode moves the dev OpenID provider to the bridge, where the server's pods
// reach it, and turns on insecureAllowHTTP for exactly that provider; the issuer the
// clients see stays on loopback.
func TestClusterManifestMovesTheProviderToTheBridge(t *testing.T) {
	m, err := loadManifests("manifests", filepath.Join(t.TempDir(), "out"), map[int]int{9400: 9401},
		func(b []byte) []byte { return clusterManifest(b, 9401) })
	if err != nil {
		t.Fatal(err)
	}
	p := m.provider
	if p.Spec.IssuerURL != "http://10.88.0.1:9401" || !p.Spec.InsecureAllowHTTP {
		t.Errorf("issuerURL %q insecureAllowHTTP %v; want http://10.88.0.1:9401 and true", p.Spec.IssuerURL, p.Spec.InsecureAllowHTTP)
	}
	if p.Spec.Server.URL != "http://127.0.0.1:9000" {
		t.Errorf("the issuer moved: %q", p.Spec.Server.URL)
	}
	if err := m.check("http://127.0.0.1:9000", "http://10.88.0.1:9401"); err != nil {
		t.Error(err)
	}

	envtest, err := loadManifests("manifests", filepath.Join(t.TempDir(), "out"), map[int]int{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if envtest.provider.Spec.InsecureAllowHTTP || envtest.provider.Spec.IssuerURL != "http://127.0.0.1:9400" {
		t.Errorf("envtest mode changed the provider: %+v", envtest.provider.Spec)
	}
}
