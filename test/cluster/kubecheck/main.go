// Command kubecheck runs in a pod under a ServiceAccount and reports what the API lets
// it read: the cluster test runs it as the authorization server's ServiceAccount to
// show, from inside the cluster, that the server may read its own registry Secret and
// is refused every other one.
//
//	kubecheck -allowed NAME -forbidden NAME[,NAME...]
//
// It reads the mounted ServiceAccount token, GETs each Secret in its own namespace, and
// prints one line per Secret, "NAME STATUS". It exits 0 only when every allowed Secret
// answers 200 and every forbidden one 403.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	allowed := flag.String("allowed", "", "comma-separated Secrets the ServiceAccount may read")
	forbidden := flag.String("forbidden", "", "comma-separated Secrets it must be refused")
	flag.Parse()
	if err := run(split(*allowed), split(*forbidden)); err != nil {
		fmt.Fprintf(os.Stderr, "kubecheck: %v\n", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func run(allowed, forbidden []string) error {
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return fmt.Errorf("no ServiceAccount token: %w", err)
	}
	ns, err := os.ReadFile(saDir + "/namespace")
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return fmt.Errorf("not in a pod: KUBERNETES_SERVICE_HOST/PORT unset")
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	status := func(name string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s:%s/api/v1/namespaces/%s/secrets/%s", host, port, ns, name), nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	var bad []string
	for _, want := range []struct {
		names []string
		code  int
	}{{allowed, http.StatusOK}, {forbidden, http.StatusForbidden}} {
		for _, n := range want.names {
			got, err := status(n)
			if err != nil {
				return err
			}
			fmt.Printf("%s %d\n", n, got)
			if got != want.code {
				bad = append(bad, fmt.Sprintf("%s: %d, want %d", n, got, want.code))
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}
