package redis

import (
	"encoding/json"

	"github.com/mcpauth/mcpauth/authserver/store"
)

// Records are stored as JSON: readable with redis-cli, and the store types already
// carry JSON tags. Encoding lives here alone so that a faster format can replace it
// without touching the operations.

func encode(v any) (string, error) {
	switch r := v.(type) { // codec_fast.go, codec_flow.go
	case store.Token:
		return encodeToken(&r)
	case store.PendingAuthorization:
		return encodePending(&r)
	case store.AuthorizationCode:
		return encodeCode(&r)
	}
	b, err := json.Marshal(v)
	return string(b), err
}

func decode(s string, v any) error {
	switch r := v.(type) { // codec_fast.go, codec_flow.go
	case *store.Token:
		return decodeToken(s, r)
	case *store.Client:
		return decodeClient(s, r)
	case *store.PendingAuthorization:
		return decodePending(s, r)
	case *store.AuthorizationCode:
		return decodeCode(s, r)
	}
	return json.Unmarshal([]byte(s), v)
}

// replayMarker replaces a redeemed code or a rotated refresh token. It cannot be
// mistaken for an encoded record, which is a JSON object. The scripts append ":" and
// the key of the access token the redemption or rotation issued, so that the same
// request run again (go-redis retries a script whose reply was lost) is recognised
// and succeeds instead of counting as a replay; a marker is anything that starts with
// replayMarker.
const replayMarker = "~used"
