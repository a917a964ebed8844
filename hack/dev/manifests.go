package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	oauthv1alpha1 "github.com/mcpauth/mcpauth/api/v1alpha1"
)

// devManifests are hack/dev/manifests as applied: the files (URLs moved to the ports
// of this run) and what the other steps need from them.
type devManifests struct {
	dir      string // the directory applied: the source, or its rendering under bin/dev
	files    []string
	provider *oauthv1alpha1.OAuthProvider
	clients  []*oauthv1alpha1.MCPClient
	// upstreamSecret is the value of the provider's clientSecretRef, which the dev
	// OpenID provider must know too.
	upstreamSecret string
}

// loadManifests reads the YAML files of src, replaces the default loopback URLs with
// the ones of this run's ports, writes them under dst, and checks that they describe
// what the other steps start: one OAuthProvider whose issuer and upstream are this
// run's, its upstream client Secret, and MCPClients of that provider. rewrite, when not
// nil, changes each file after the ports moved (the cluster mode's provider address).
func loadManifests(src, dst string, ports map[int]int, rewrite func([]byte) []byte) (*devManifests, error) {
	entries, err := os.ReadDir(src)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dst); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return nil, err
	}
	m := &devManifests{dir: dst}
	secrets := map[string]*corev1.Secret{}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return nil, err
		}
		b = movePorts(b, ports)
		if rewrite != nil {
			b = rewrite(b)
		}
		out := filepath.Join(dst, e.Name())
		if err := os.WriteFile(out, b, 0o600); err != nil {
			return nil, err
		}
		m.files = append(m.files, out)
		for i, doc := range splitYAML(b) {
			if err := m.add(doc, secrets); err != nil {
				return nil, fmt.Errorf("%s (document %d): %w", filepath.Join(src, e.Name()), i+1, err)
			}
		}
	}
	if m.provider == nil {
		return nil, fmt.Errorf("%s has no OAuthProvider", src)
	}
	ref := m.provider.Spec.ClientSecretRef
	s, ok := secrets[m.provider.Namespace+"/"+ref.Name]
	if !ok {
		return nil, fmt.Errorf("%s has no Secret %s/%s (the OAuthProvider's clientSecretRef)", src, m.provider.Namespace, ref.Name)
	}
	if v, ok := s.StringData[ref.Key]; ok {
		m.upstreamSecret = v
	} else if v, ok := s.Data[ref.Key]; ok {
		m.upstreamSecret = string(v)
	} else {
		return nil, fmt.Errorf("the Secret %s in %s has no key %s", ref.Name, src, ref.Key)
	}
	for _, c := range m.clients {
		if c.Namespace != m.provider.Namespace || c.Spec.ProviderRef.Name != m.provider.Name {
			return nil, fmt.Errorf("the MCPClient %s/%s must belong to the OAuthProvider %s/%s", c.Namespace, c.Name, m.provider.Namespace, m.provider.Name)
		}
	}
	slices.Sort(m.files)
	return m, nil
}

// movePorts replaces each http://127.0.0.1:FROM with http://127.0.0.1:TO, through
// placeholders so that one move never feeds another.
func movePorts(b []byte, ports map[int]int) []byte {
	for from := range ports {
		b = bytes.ReplaceAll(b, fmt.Appendf(nil, "http://127.0.0.1:%d", from), fmt.Appendf(nil, "\x00port-%d\x00", from))
	}
	for from, to := range ports {
		b = bytes.ReplaceAll(b, fmt.Appendf(nil, "\x00port-%d\x00", from), fmt.Appendf(nil, "http://127.0.0.1:%d", to))
	}
	return b
}

// splitYAML splits a multi-document YAML file.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func (m *devManifests) add(doc []byte, secrets map[string]*corev1.Secret) error {
	var meta struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	ns := func(s *string) {
		if *s == "" {
			*s = "default"
		}
	}
	switch meta.Kind {
	case "OAuthProvider":
		if m.provider != nil {
			return errors.New("make dev runs one OAuthProvider; this is a second")
		}
		var p oauthv1alpha1.OAuthProvider
		if err := yaml.UnmarshalStrict(doc, &p); err != nil {
			return err
		}
		ns(&p.Namespace)
		m.provider = &p
	case "MCPClient":
		var c oauthv1alpha1.MCPClient
		if err := yaml.UnmarshalStrict(doc, &c); err != nil {
			return err
		}
		ns(&c.Namespace)
		m.clients = append(m.clients, &c)
	case "Secret":
		var s corev1.Secret
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			return err
		}
		ns(&s.Namespace)
		secrets[s.Namespace+"/"+s.Name] = &s
	}
	return nil
}

// check compares the provider with the URLs this run serves.
func (m *devManifests) check(issuer, idp string) error {
	p := m.provider
	if got := strings.TrimSuffix(p.Spec.Server.URL, "/"); got != issuer {
		return fmt.Errorf("the OAuthProvider's spec.server.url is %s, but the authorization server runs at %s", got, issuer)
	}
	if p.Spec.Type != oauthv1alpha1.ProviderOIDC || strings.TrimSuffix(p.Spec.IssuerURL, "/") != idp {
		return fmt.Errorf("the OAuthProvider must be of type oidc with issuerURL %s (the dev OpenID provider), not %s %s", idp, p.Spec.Type, p.Spec.IssuerURL)
	}
	return nil
}

// callbackURL is where the dev OpenID provider sends users back.
func (m *devManifests) callbackURL() string {
	path := m.provider.Spec.Server.CallbackPath
	if path == "" {
		path = "/oauth/callback"
	}
	return strings.TrimSuffix(m.provider.Spec.Server.URL, "/") + path
}
