package controllers

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/mcpauth/mcpauth/authserver/config"
)

// Signing keys of JWT access tokens. The operator owns them: it generates them into a
// Secret, adds a successor on a period or on request, and removes a retired key once
// every token it signed has expired. The server only reads the file (see
// config.SigningKeySet) and follows its changes without a restart, which is why this
// Secret is kept out of the pod template's inputs hash.
//
// The schedule is derived from the keys themselves, so it survives operator restarts
// and needs no state but the Secret: the newest key's activateAt plus the rotation
// period is when the next key is added; a key's publishUntil is when it leaves.

// publishSlack is added to a retired key's publication beyond the expiry of its last
// token: clock skew, and the time the kubelet takes to bring a changed Secret to the
// pods (a server that has not yet seen its successor keeps signing with it).
const publishSlack = time.Minute

// requestedRotationSlack is how long after a rotation on request its new key starts
// signing. The kubelet brings a changed Secret to each pod at its own moment: within
// its sync period (1 m by default) plus its Secret cache's delay (next to nothing with
// the default watch-based cache; its TTL with the TTL-based one), so replicas disagree
// about the file for up to about a minute. A key that signed at once would
// meanwhile be missing from the JWKS of the replicas that have not seen it, which call
// its tokens inactive at introspection, and a verifier that fetched such a JWKS refuses
// them until it may fetch again. Published a minute ahead, the key is in every
// replica's JWKS before its first token. The cost is small: the old key signs one
// minute longer, and it stays published an access-token lifetime plus publishSlack
// after its successor activates anyway. Periodic and algorithm rotations wait a whole
// access-token lifetime, which covers this too.
const requestedRotationSlack = time.Minute

// Defaults of the spec fields, for objects stored before the CRD defaulted them.
const (
	defaultSigningKeyRotation = 720 * time.Hour
	defaultAccessTokenTTL     = config.DefaultAccessTokenTTL
)

// Why a key was added to the set.
const (
	rotationInitial   = "initial"
	rotationPeriod    = "period"
	rotationRequest   = "request"
	rotationAlgorithm = "algorithm"
)

// signingPolicy is what the spec says about signing keys.
type signingPolicy struct {
	// algorithm is config.SigningES256 or config.SigningRS256.
	algorithm string
	// rotation is how long a key signs before its successor is added.
	rotation time.Duration
	// accessTokenTTL is how long a signed token lives: a successor is published this
	// long before it signs, and a retired key this long (plus slack) after.
	accessTokenTTL time.Duration
}

// keyPlan is what planSigningKeys decided.
type keyPlan struct {
	// keys is the set to write, ordered by activateAt.
	keys []config.SigningKey
	// changed says keys differs from the set planned from.
	changed bool
	// added is the key added and why (one of the rotation* constants); empty when none.
	added  *config.SigningKey
	reason string
	// dropped are the kids removed: retired keys past publishUntil, and successors
	// that never signed and were replaced.
	dropped []string
	// next is the earliest moment after now at which the plan changes: a key
	// activates, a retired key leaves, or the next rotation is due.
	next time.Time
	// active is the kid signing at now; nextRotation when the next key is added.
	active       string
	nextRotation time.Time
}

// newKeyFunc makes a fresh key of an algorithm that signs from activateAt.
type newKeyFunc func(algorithm string, activateAt time.Time) (config.SigningKey, error)

// planSigningKeys decides the signing keys at now from the current ones (valid keys,
// as config.ParseSigningKeys accepts them; none when the Secret is missing or broken).
// requested asks for a key that signs as soon as every replica can have it, after
// requestedRotationSlack. now must be truncated to the second:
// the times are written to the Secret and to status, which keep seconds only.
func planSigningKeys(current []config.SigningKey, now time.Time, pol signingPolicy, requested bool, newKey newKeyFunc) (keyPlan, error) {
	keys := slices.Clone(current)
	slices.SortStableFunc(keys, func(a, b config.SigningKey) int { return a.ActivateAt.Compare(b.ActivateAt) })
	var plan keyPlan

	// Keys past their publication: every token they signed has expired.
	keys = slices.DeleteFunc(keys, func(k config.SigningKey) bool {
		gone := !k.PublishUntil.IsZero() && !now.Before(k.PublishUntil)
		if gone {
			plan.dropped = append(plan.dropped, k.KeyID)
		}
		return gone
	})

	reason, activateAt := rotationDue(keys, now, pol, requested)
	if reason != "" {
		// A successor that has not signed yet is replaced rather than kept: it would
		// otherwise take over from the new key when its own time came.
		keys = slices.DeleteFunc(keys, func(k config.SigningKey) bool {
			pending := k.ActivateAt.After(now)
			if pending {
				plan.dropped = append(plan.dropped, k.KeyID)
			}
			return pending
		})
		activateAt = ceilSecond(activateAt)
		// The newest key must be the one that signs: ActiveSigningKey breaks ties by
		// file order, so two keys activated in the same second are kept apart.
		if n := len(keys); n > 0 && !activateAt.After(keys[n-1].ActivateAt) {
			activateAt = keys[n-1].ActivateAt.Add(time.Second)
		}
		k, err := newKey(pol.algorithm, activateAt)
		if err != nil {
			return keyPlan{}, err
		}
		keys = append(keys, k)
		plan.added, plan.reason = &keys[len(keys)-1], reason
	}

	// A key signs until the next one activates; its tokens live one TTL more.
	for i := 0; i < len(keys)-1; i++ {
		want := ceilSecond(keys[i+1].ActivateAt.Add(pol.accessTokenTTL + publishSlack))
		// Never shorten a publication: tokens signed under a longer TTL still live.
		if keys[i].PublishUntil.Before(want) {
			keys[i].PublishUntil = want
		}
	}
	if plan.added != nil {
		plan.added = &keys[len(keys)-1]
	}

	plan.keys = keys
	plan.changed = !sameKeys(current, keys)
	newest := keys[len(keys)-1]
	plan.nextRotation = newest.ActivateAt.Add(pol.rotation)
	plan.next = plan.nextRotation
	for _, k := range keys {
		if k.ActivateAt.After(now) && k.ActivateAt.Before(plan.next) {
			plan.next = k.ActivateAt
		}
		if k.PublishUntil.After(now) && k.PublishUntil.Before(plan.next) {
			plan.next = k.PublishUntil
		}
		if !k.ActivateAt.After(now) {
			plan.active = k.KeyID // keys are in activateAt order: the last active one signs
		}
	}
	return plan, nil
}

// rotationDue says whether a key must be added at now, why, and from when it signs.
func rotationDue(keys []config.SigningKey, now time.Time, pol signingPolicy, requested bool) (string, time.Time) {
	if len(keys) == 0 || keys[0].ActivateAt.After(now) {
		// Nothing can sign now: a key is needed at once.
		return rotationInitial, now
	}
	newest := keys[len(keys)-1]
	// A successor is published a TTL before it signs, so verifiers that cache the
	// JWKS have it before the first token it signs reaches them. A request is for a
	// key that signs soon (a suspected leak): as soon as the Secret can have reached
	// every replica, so that none signs with a key another does not publish yet;
	// verifiers that cached the JWKS before fetch an unknown kid.
	switch {
	case requested:
		return rotationRequest, now.Add(requestedRotationSlack)
	case newest.Algorithm != pol.algorithm:
		return rotationAlgorithm, now.Add(pol.accessTokenTTL)
	case !now.Before(newest.ActivateAt.Add(pol.rotation)):
		return rotationPeriod, now.Add(pol.accessTokenTTL)
	}
	return "", time.Time{}
}

// ceilSecond rounds t up to a whole second: the file and status keep seconds, and
// rounding down would publish a key for less than promised.
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t.Truncate(time.Second)
}

// sameKeys compares key sets field by field; time.Time values compare by instant.
func sameKeys(a, b []config.SigningKey) bool {
	return slices.EqualFunc(a, b, func(x, y config.SigningKey) bool {
		return x.KeyID == y.KeyID && x.Algorithm == y.Algorithm && x.PrivateKey == y.PrivateKey &&
			x.ActivateAt.Equal(y.ActivateAt) && x.PublishUntil.Equal(y.PublishUntil)
	})
}

// parseSigningKeysSecret reads the keys the server would read from the Secret's data.
// A missing file is no keys; a broken one is no keys and an error saying why, so the
// caller can report it before replacing the file.
func parseSigningKeysSecret(data []byte) ([]config.SigningKey, error) {
	if len(data) == 0 {
		return nil, nil
	}
	parsed, err := config.ParseSigningKeys(data)
	if err != nil {
		return nil, err
	}
	out := make([]config.SigningKey, len(parsed))
	for i, k := range parsed {
		out[i] = k.SigningKey
	}
	return out, nil
}

// marshalSigningKeys writes the signing keys file.
func marshalSigningKeys(keys []config.SigningKey) ([]byte, error) {
	data, err := json.MarshalIndent(config.SigningKeySet{Keys: keys}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal signing keys: %w", err)
	}
	return append(data, '\n'), nil
}

// newSigningKey generates a key (config.NewSigningKey) under a random kid: kids must
// never repeat, since a verifier caches keys by kid.
func newSigningKey(algorithm string, activateAt time.Time) (config.SigningKey, error) {
	kid := make([]byte, 12)
	if _, err := rand.Read(kid); err != nil {
		return config.SigningKey{}, fmt.Errorf("generate kid: %w", err)
	}
	return config.NewSigningKey(base64.RawURLEncoding.EncodeToString(kid), algorithm, activateAt.UTC())
}
