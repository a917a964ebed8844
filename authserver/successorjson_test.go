package authserver

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestSuccessorRecordJSON pins appendJSON to json.Marshal, byte for byte.
func TestSuccessorRecordJSON(t *testing.T) {
	now := time.Date(2026, 11, 24, 10, 1, 2, 345678900, time.UTC)
	for _, r := range []successorRecord{
		{},
		{ClientID: "c1", AccessToken: "mat_abc", AccessExpiresAt: now},
		{ClientID: "https://client.example/meta.json?a=1&b=<2>", AccessToken: "mat_x", AccessExpiresAt: now.Local(),
			RefreshToken: "mrt_y", RefreshExpiresAt: now.Add(time.Hour).In(time.FixedZone("x", 3600)), Scope: "openid profile"},
		{ClientID: "é\"\\\n\u2028", AccessToken: "a", AccessExpiresAt: now, Scope: "s\x00"},
		{ClientID: "c", AccessToken: "a", AccessExpiresAt: now, RefreshExpiresAt: now, Scope: string([]byte{0xff, 'a'})},
	} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.appendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("appendJSON = %s, json.Marshal = %s", got, want)
		}
	}
	if _, err := (&successorRecord{AccessExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).appendJSON(nil); err == nil {
		t.Error("appendJSON of a year past 9999: no error, json.Marshal has one")
	}
}
