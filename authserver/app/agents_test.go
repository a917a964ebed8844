package app

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestAgentSettingsComeFromTheFile: deviceAuthorization turns the device endpoints and
// their metadata on, with the interval the file sets; a clients entry with
// client_credentials and no redirect URIs gets tokens.
func TestAgentSettingsComeFromTheFile(t *testing.T) {
	base := start(t, `
deviceAuthorization: {enabled: true, interval: 7s}
clients:
- {clientID: cli, grantTypes: ["urn:ietf:params:oauth:grant-type:device_code"]}
`, nil)
	if code, body := get(t, base+"/.well-known/oauth-authorization-server"); code != 200 ||
		!strings.Contains(body, `"device_authorization_endpoint":"http://127.0.0.1:8080/oauth/device_authorization"`) ||
		!strings.Contains(body, "urn:ietf:params:oauth:grant-type:device_code") {
		t.Fatalf("metadata: %d %s", code, body)
	}
	resp, err := http.PostForm(base+"/oauth/device_authorization", url.Values{"client_id": {"cli"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var da struct {
		UserCode string `json:"user_code"`
		Interval int    `json:"interval"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&da); err != nil || resp.StatusCode != 200 || da.Interval != 7 || len(da.UserCode) != 9 {
		t.Fatalf("device authorization: %d %+v %v", resp.StatusCode, da, err)
	}
	if code, _ := get(t, base+"/oauth/device"); code != 200 {
		t.Errorf("verification page: %d", code)
	}

	off := start(t, "", nil)
	if code, _ := get(t, off+"/oauth/device"); code != http.StatusNotFound {
		t.Errorf("verification page with the default configuration: %d, want 404", code)
	}
}
