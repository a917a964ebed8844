package certreload

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	serverName = "reload.test"
	interval   = 20 * time.Millisecond
	// patience bounds every wait; a reload normally lands within two intervals.
	patience = 5 * time.Second
)

// pair is a self-signed certificate and its key, in PEM.
type pair struct {
	name         string
	cert         *x509.Certificate
	certPEM, key []byte
}

func newPair(t *testing.T, name string) pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{serverName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pair{
		name:    name,
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// secretDir lays files out as the kubelet mounts a Secret: tls.crt and tls.key are
// symlinks through ..data, a symlink to a timestamped directory that each update
// replaces atomically.
type secretDir struct {
	t   *testing.T
	dir string
	n   int
}

func newSecretDir(t *testing.T, certPEM, keyPEM []byte) *secretDir {
	d := &secretDir{t: t, dir: t.TempDir()}
	d.update(certPEM, keyPEM)
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(d.dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func (d *secretDir) certFile() string { return filepath.Join(d.dir, "tls.crt") }
func (d *secretDir) keyFile() string  { return filepath.Join(d.dir, "tls.key") }

// update writes a new version and swaps ..data to it, as the kubelet does.
func (d *secretDir) update(certPEM, keyPEM []byte) {
	d.t.Helper()
	d.n++
	version := filepath.Join(d.dir, "..v"+strings.Repeat("i", d.n))
	if err := os.Mkdir(version, 0o755); err != nil {
		d.t.Fatal(err)
	}
	for f, b := range map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM} {
		if err := os.WriteFile(filepath.Join(version, f), b, 0o600); err != nil {
			d.t.Fatal(err)
		}
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(version), tmp); err != nil {
		d.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		d.t.Fatal(err)
	}
}

// tlsServer is a real HTTPS server whose certificate comes from r.
func tlsServer(t *testing.T, r *Reloader) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	srv.TLS = &tls.Config{GetCertificate: r.GetCertificate}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// served connects afresh (no connection reuse) with SNI, verifying the chain against
// the given pairs, and returns the common name of the certificate the server sent.
func served(t *testing.T, srv *httptest.Server, trusted ...pair) string {
	t.Helper()
	roots := x509.NewCertPool()
	for _, p := range trusted {
		roots.AddCert(p.cert)
	}
	client := &http.Client{Timeout: patience, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{ServerName: serverName, RootCAs: roots},
	}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

func waitServed(t *testing.T, srv *httptest.Server, want string, trusted ...pair) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		got := served(t, srv, trusted...)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server still presents %q, want %q", got, want)
		}
		time.Sleep(interval / 2)
	}
}

func run(t *testing.T, r *Reloader) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func TestServesRotatedCertificate(t *testing.T) {
	v1, v2 := newPair(t, "v1"), newPair(t, "v2")
	dir := newSecretDir(t, v1.certPEM, v1.key)
	var reloaded atomic.Pointer[tls.Certificate]
	r, err := New(dir.certFile(), dir.keyFile(), WithInterval(interval),
		OnReload(func(c *tls.Certificate) { reloaded.Store(c) }),
		OnError(func(err error) { t.Errorf("unexpected reload error: %v", err) }))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := tlsServer(t, r)
	run(t, r)
	if got := served(t, srv, v1); got != "v1" {
		t.Fatalf("served %q before rotation, want v1", got)
	}

	dir.update(v2.certPEM, v2.key)
	waitServed(t, srv, "v2", v1, v2)
	if c := reloaded.Load(); c == nil || c.Leaf.Subject.CommonName != "v2" {
		t.Errorf("OnReload got %v, want the v2 certificate", c)
	}
	if got := r.Certificate().Leaf.Subject.CommonName; got != "v2" {
		t.Errorf("Certificate() = %q, want v2", got)
	}
}

func TestKeepsLastGoodCertificateWhenNewPairIsBroken(t *testing.T) {
	v1, other, v3 := newPair(t, "v1"), newPair(t, "other"), newPair(t, "v3")
	tests := []struct {
		name         string
		certPEM, key []byte
	}{
		{"certificate is garbage", []byte("not a certificate"), v1.key},
		{"key is from another pair", v1.certPEM, other.key},
		{"key is empty", v1.certPEM, nil},
		{"certificate is truncated", v1.certPEM[:len(v1.certPEM)/2], v1.key},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newSecretDir(t, v1.certPEM, v1.key)
			var mu sync.Mutex
			var errs []error
			reported := make(chan struct{}, 1)
			r, err := New(dir.certFile(), dir.keyFile(), WithInterval(interval), OnError(func(err error) {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				select {
				case reported <- struct{}{}:
				default:
				}
			}))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			srv := tlsServer(t, r)
			run(t, r)

			dir.update(tt.certPEM, tt.key)
			select {
			case <-reported:
			case <-time.After(patience):
				t.Fatal("the broken pair was never reported")
			}
			if got := served(t, srv, v1); got != "v1" {
				t.Fatalf("served %q after a broken update, want v1", got)
			}
			// The same broken content is reported once, not on every tick.
			time.Sleep(5 * interval)
			mu.Lock()
			n, first := len(errs), errs[0]
			mu.Unlock()
			if n != 1 {
				t.Errorf("broken pair reported %d times, want once", n)
			}
			if !strings.Contains(first.Error(), "load TLS key pair") {
				t.Errorf("error %q does not say what failed", first)
			}

			dir.update(v3.certPEM, v3.key)
			waitServed(t, srv, "v3", v1, v3)
		})
	}
}

func TestReloadDetectsContentNotTimestamps(t *testing.T) {
	// Some tools copy files preserving their mtime; the content hash still sees it.
	v1, v2 := newPair(t, "v1"), newPair(t, "v2")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	write := func(p pair) {
		stamp := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
		for f, b := range map[string][]byte{certFile: p.certPEM, keyFile: p.key} {
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f, stamp, stamp); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(v1)
	r, err := New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := r.Reload(); changed || err != nil {
		t.Fatalf("Reload with nothing changed = %v, %v", changed, err)
	}
	write(v2)
	if changed, err := r.Reload(); !changed || err != nil {
		t.Fatalf("Reload after rewrite = %v, %v; want true, nil", changed, err)
	}
	if got := r.Certificate().Leaf.Subject.CommonName; got != "v2" {
		t.Errorf("serving %q, want v2", got)
	}
}

func TestMissingFileIsReportedAndOldCertificateKept(t *testing.T) {
	v1 := newPair(t, "v1")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := errors.Join(os.WriteFile(certFile, v1.certPEM, 0o600), os.WriteFile(keyFile, v1.key, 0o600)); err != nil {
		t.Fatal(err)
	}
	r, err := New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	for range 2 { // reported every time, unlike a broken pair
		if _, err := r.Reload(); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Reload without key file = %v, want ErrNotExist", err)
		}
	}
	if c, _ := r.GetCertificate(nil); c == nil || c.Leaf.Subject.CommonName != "v1" {
		t.Fatalf("GetCertificate = %v, want v1", c)
	}
}

func TestNewFailsWithoutAGoodPair(t *testing.T) {
	v1, other := newPair(t, "v1"), newPair(t, "other")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cert, key, otherKey := write("c.pem", v1.certPEM), write("k.pem", v1.key), write("o.pem", other.key)
	tests := []struct {
		name, cert, key, want string
	}{
		{"missing certificate", filepath.Join(dir, "none.pem"), key, "read TLS certificate: open "},
		{"missing key", cert, filepath.Join(dir, "none.pem"), "read TLS key: open "},
		{"mismatched pair", cert, otherKey, "load TLS key pair"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cert, tt.key)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("New = %v, %v; want error starting %q", r, err, tt.want)
			}
		})
	}
}
