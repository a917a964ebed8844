package e2e

import (
	"bufio"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// serverMetrics are the series the test reads from one replica's /metrics.
type serverMetrics struct {
	oauthRequests       float64 // requests to the authorization flow's endpoints
	refreshTokensIssued float64
}

var (
	requestSeriesRE = regexp.MustCompile(`^mcpauth_http_requests_total\{.*endpoint="([a-z_]+)".*\} (\S+)$`)
	refreshSeriesRE = regexp.MustCompile(`^mcpauth_tokens_issued_total\{grant_type="refresh_token"\} (\S+)$`)
	oauthEndpoints  = []string{"authorize", "consent", "callback", "token", "register", "introspect"}
)

func scrapeMetrics(t *testing.T, backend string) serverMetrics {
	t.Helper()
	var m serverMetrics
	for _, line := range metricLines(t, backend) {
		if g := requestSeriesRE.FindStringSubmatch(line); g != nil && slices.Contains(oauthEndpoints, g[1]) {
			v, _ := strconv.ParseFloat(g[2], 64)
			m.oauthRequests += v
		}
		if g := refreshSeriesRE.FindStringSubmatch(line); g != nil {
			v, _ := strconv.ParseFloat(g[1], 64)
			m.refreshTokensIssued += v
		}
	}
	return m
}

// requestSeries returns the request counters of a replica, for failure messages.
func requestSeries(t *testing.T, backend string) []string {
	var out []string
	for _, l := range metricLines(t, backend) {
		if strings.HasPrefix(l, "mcpauth_http_requests_total") || strings.HasPrefix(l, "mcpauth_tokens_issued_total") {
			out = append(out, l)
		}
	}
	return out
}

func metricLines(t *testing.T, backend string) []string {
	t.Helper()
	resp, err := http.Get("http://" + backend + "/metrics")
	if err != nil {
		t.Errorf("scrape %s: %v", backend, err)
		return nil
	}
	defer resp.Body.Close()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}
