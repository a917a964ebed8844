package controllers

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/mcpauth/mcpauth/authserver/config"
)

var (
	t0  = time.Date(2026, 11, 24, 8, 0, 0, 0, time.UTC)
	pol = signingPolicy{algorithm: config.SigningES256, rotation: 720 * time.Hour, accessTokenTTL: 15 * time.Minute}
)

// fakeKeys makes keys with predictable kids (k1, k2, ...) and no key material, so the
// schedule can be read in the assertions.
func fakeKeys() newKeyFunc {
	n := 0
	return func(alg string, at time.Time) (config.SigningKey, error) {
		n++
		return config.SigningKey{KeyID: fmt.Sprintf("k%d", n), Algorithm: alg, PrivateKey: "pem", ActivateAt: at}, nil
	}
}

func key(kid, alg string, activate, publishUntil time.Time) config.SigningKey {
	return config.SigningKey{KeyID: kid, Algorithm: alg, PrivateKey: "pem", ActivateAt: activate, PublishUntil: publishUntil}
}

func TestPlanSigningKeys(t *testing.T) {
	ttl, slack, reqSlack := pol.accessTokenTTL, publishSlack, requestedRotationSlack
	es := config.SigningES256
	tests := []struct {
		name      string
		current   []config.SigningKey
		now       time.Time
		pol       signingPolicy
		requested bool
		// want: the keys after, the reason a key was added, the active kid, the next moment.
		want   []config.SigningKey
		reason string
		active string
		next   time.Time
	}{
		{
			name: "no key yet: one that signs at once",
			now:  t0, pol: pol,
			want:   []config.SigningKey{key("k1", es, t0, time.Time{})},
			reason: rotationInitial, active: "k1", next: t0.Add(pol.rotation),
		},
		{
			name:    "nothing due: nothing changes, and the next moment is the rotation",
			current: []config.SigningKey{key("old", es, t0, time.Time{})},
			now:     t0.Add(100 * time.Hour), pol: pol,
			want:   []config.SigningKey{key("old", es, t0, time.Time{})},
			active: "old", next: t0.Add(pol.rotation),
		},
		{
			name:    "the period elapsed: a successor published one TTL before it signs, the old key kept one TTL after",
			current: []config.SigningKey{key("old", es, t0, time.Time{})},
			now:     t0.Add(pol.rotation), pol: pol,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(pol.rotation+ttl+ttl+slack)),
				key("k1", es, t0.Add(pol.rotation+ttl), time.Time{}),
			},
			reason: rotationPeriod, active: "old", next: t0.Add(pol.rotation + ttl),
		},
		{
			name: "the successor signs: nothing to write, the next moment is the old key's retirement",
			current: []config.SigningKey{
				key("old", es, t0, t0.Add(2*time.Hour)),
				key("new", es, t0.Add(time.Hour), time.Time{}),
			},
			now: t0.Add(time.Hour), pol: pol,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(2*time.Hour)),
				key("new", es, t0.Add(time.Hour), time.Time{}),
			},
			active: "new", next: t0.Add(2 * time.Hour),
		},
		{
			name: "a retired key leaves at publishUntil",
			current: []config.SigningKey{
				key("old", es, t0, t0.Add(2*time.Hour)),
				key("new", es, t0.Add(time.Hour), time.Time{}),
			},
			now: t0.Add(2 * time.Hour), pol: pol,
			want:   []config.SigningKey{key("new", es, t0.Add(time.Hour), time.Time{})},
			active: "new", next: t0.Add(time.Hour + pol.rotation),
		},
		{
			name:    "a request: a key published at once that signs a minute on, the old one kept until its tokens expire",
			current: []config.SigningKey{key("old", es, t0, time.Time{})},
			now:     t0.Add(time.Hour), pol: pol, requested: true,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(time.Hour+reqSlack+ttl+slack)),
				key("k1", es, t0.Add(time.Hour+reqSlack), time.Time{}),
			},
			reason: rotationRequest, active: "old", next: t0.Add(time.Hour + reqSlack),
		},
		{
			name: "a minute after a request: the new key signs, nothing to write",
			current: []config.SigningKey{
				key("old", es, t0, t0.Add(time.Hour+reqSlack+ttl+slack)),
				key("k1", es, t0.Add(time.Hour+reqSlack), time.Time{}),
			},
			now: t0.Add(time.Hour + reqSlack), pol: pol,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(time.Hour+reqSlack+ttl+slack)),
				key("k1", es, t0.Add(time.Hour+reqSlack), time.Time{}),
			},
			active: "k1", next: t0.Add(time.Hour + reqSlack + ttl + slack),
		},
		{
			name:    "a request in the second the key was made: the new key still signs a minute on",
			current: []config.SigningKey{key("old", es, t0, time.Time{})},
			now:     t0, pol: pol, requested: true,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(reqSlack+ttl+slack)),
				key("k1", es, t0.Add(reqSlack), time.Time{}),
			},
			reason: rotationRequest, active: "old", next: t0.Add(reqSlack),
		},
		{
			name: "a request while a scheduled successor waits: the successor, which never signed, is replaced",
			current: []config.SigningKey{
				key("old", es, t0, t0.Add(pol.rotation+ttl+ttl+slack)),
				key("waiting", es, t0.Add(pol.rotation+ttl), time.Time{}),
			},
			now: t0.Add(pol.rotation + 5*time.Minute), pol: pol, requested: true,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(pol.rotation+ttl+ttl+slack)),
				key("k1", es, t0.Add(pol.rotation+5*time.Minute+reqSlack), time.Time{}),
			},
			reason: rotationRequest, active: "old", next: t0.Add(pol.rotation + 5*time.Minute + reqSlack),
		},
		{
			name: "a second request inside the minute: the first request's key, which never signed, is replaced",
			current: []config.SigningKey{
				key("old", es, t0, t0.Add(time.Hour+reqSlack+ttl+slack)),
				key("first", es, t0.Add(time.Hour+reqSlack), time.Time{}),
			},
			now: t0.Add(time.Hour + 30*time.Second), pol: pol, requested: true,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(time.Hour+30*time.Second+reqSlack+ttl+slack)),
				key("k1", es, t0.Add(time.Hour+30*time.Second+reqSlack), time.Time{}),
			},
			reason: rotationRequest, active: "old", next: t0.Add(time.Hour + 30*time.Second + reqSlack),
		},
		{
			name:    "another algorithm: a successor of it, published first",
			current: []config.SigningKey{key("old", es, t0, time.Time{})},
			now:     t0.Add(time.Hour), pol: signingPolicy{config.SigningRS256, pol.rotation, ttl},
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(time.Hour+ttl+ttl+slack)),
				key("k1", config.SigningRS256, t0.Add(time.Hour+ttl), time.Time{}),
			},
			reason: rotationAlgorithm, active: "old", next: t0.Add(time.Hour + ttl),
		},
		{
			name: "another algorithm while a successor waits: the successor, which never signed, is replaced",
			current: []config.SigningKey{
				key("old", es, t0, t0.Add(pol.rotation+ttl+ttl+slack)),
				key("waiting", es, t0.Add(pol.rotation+ttl), time.Time{}),
			},
			now: t0.Add(pol.rotation + 5*time.Minute), pol: signingPolicy{config.SigningRS256, pol.rotation, ttl},
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(pol.rotation+5*time.Minute+ttl+ttl+slack)),
				key("k1", config.SigningRS256, t0.Add(pol.rotation+5*time.Minute+ttl), time.Time{}),
			},
			reason: rotationAlgorithm, active: "old", next: t0.Add(pol.rotation + 5*time.Minute + ttl),
		},
		{
			name: "a shorter access-token TTL never shortens a retired key's publication",
			current: []config.SigningKey{
				key("old", es, t0, t0.Add(10*time.Hour)),
				key("new", es, t0.Add(time.Hour), time.Time{}),
			},
			now: t0.Add(2 * time.Hour), pol: pol,
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(10*time.Hour)),
				key("new", es, t0.Add(time.Hour), time.Time{}),
			},
			active: "new", next: t0.Add(10 * time.Hour),
		},
		{
			name:    "keys that cannot sign yet (a hand-made file): one that signs now replaces them",
			current: []config.SigningKey{key("future", es, t0.Add(time.Hour), time.Time{})},
			now:     t0, pol: pol,
			want:   []config.SigningKey{key("k1", es, t0, time.Time{})},
			reason: rotationInitial, active: "k1", next: t0.Add(pol.rotation),
		},
		{
			name:    "a TTL in fractions of a second: times are rounded up to whole seconds",
			current: []config.SigningKey{key("old", es, t0, time.Time{})},
			now:     t0.Add(pol.rotation), pol: signingPolicy{es, pol.rotation, 90*time.Second + 500*time.Millisecond},
			want: []config.SigningKey{
				key("old", es, t0, t0.Add(pol.rotation+91*time.Second+91*time.Second+slack)),
				key("k1", es, t0.Add(pol.rotation+91*time.Second), time.Time{}),
			},
			reason: rotationPeriod, active: "old", next: t0.Add(pol.rotation + 91*time.Second),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewWithT(t)
			plan, err := planSigningKeys(tt.current, tt.now, tt.pol, tt.requested, fakeKeys())
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(sameKeys(plan.keys, tt.want)).To(BeTrue(), "keys:\n%v\nwant:\n%v", plan.keys, tt.want)
			g.Expect(plan.changed).To(Equal(!sameKeys(tt.current, tt.want)))
			g.Expect(plan.reason).To(Equal(tt.reason))
			g.Expect(plan.added != nil).To(Equal(tt.reason != ""))
			g.Expect(plan.active).To(Equal(tt.active))
			g.Expect(plan.next).To(Equal(tt.next))
			g.Expect(plan.next.After(tt.now)).To(BeTrue(), "the next moment is in the future: no busy loop")
		})
	}
}

// TestSigningKeyScheduleOverTwoYears walks the planner through two years, at the
// moments it asks for and at random ones, with requests and algorithm changes thrown
// in, and checks what verifiers rely on at every step.
func TestSigningKeyScheduleOverTwoYears(t *testing.T) {
	for _, p := range []signingPolicy{
		{algorithm: config.SigningES256, rotation: 240 * time.Hour, accessTokenTTL: 15 * time.Minute},
		// The CRD's extremes: keys rotated hourly, tokens that live a day.
		{algorithm: config.SigningES256, rotation: time.Hour, accessTokenTTL: 24 * time.Hour},
	} {
		t.Run(fmt.Sprintf("rotation %s, TTL %s", p.rotation, p.accessTokenTTL), func(t *testing.T) {
			walkSchedule(t, p)
		})
	}
}

func walkSchedule(t *testing.T, p signingPolicy) {
	g := NewWithT(t)
	rng := rand.New(rand.NewPCG(9, 9))
	newKey := fakeKeys()
	var keys []config.SigningKey
	now := t0
	firstSeen := map[string]time.Time{}  // when a kid first appeared in the set
	lastSigned := map[string]time.Time{} // the last moment a kid was the active one
	adds := map[string]string{}          // why each kid was added
	steps, requestedSigned := 0, 0
	for now.Before(t0.Add(2 * 365 * 24 * time.Hour)) {
		steps++
		requested := rng.IntN(50) == 0
		if rng.IntN(100) == 0 {
			if p.algorithm == config.SigningES256 {
				p.algorithm = config.SigningRS256
			} else {
				p.algorithm = config.SigningES256
			}
		}
		plan, err := planSigningKeys(keys, now, p, requested, newKey)
		g.Expect(err).NotTo(HaveOccurred())
		if plan.added != nil {
			adds[plan.added.KeyID] = plan.reason
		}
		present := map[string]bool{}
		for _, k := range plan.keys {
			present[k.KeyID] = true
			if _, ok := firstSeen[k.KeyID]; !ok {
				firstSeen[k.KeyID] = now
			}
		}
		// A key that signed at some moment stays published a TTL after it.
		for kid, signed := range lastSigned {
			if !present[kid] {
				g.Expect(now.Before(signed.Add(p.accessTokenTTL))).To(BeFalse(),
					"%s signed at %s and was dropped at %s, before its tokens expired", kid, signed, now)
			}
		}
		g.Expect(plan.active).NotTo(BeEmpty(), "some key signs at %s", now)
		lastSigned[plan.active] = now
		// A scheduled successor was published a TTL before it signed; one requested,
		// long enough before it signed for the Secret to reach every replica.
		switch adds[plan.active] {
		case rotationPeriod, rotationAlgorithm:
			g.Expect(firstSeen[plan.active].Add(p.accessTokenTTL).After(now)).To(BeFalse(),
				"%s signs at %s but was published only at %s", plan.active, now, firstSeen[plan.active])
		case rotationRequest:
			g.Expect(firstSeen[plan.active].Add(requestedRotationSlack).After(now)).To(BeFalse(),
				"%s, requested, signs at %s but was published only at %s", plan.active, now, firstSeen[plan.active])
			requestedSigned++
		}
		// Retired keys leave: at most those of the last TTL, one waiting, the active one.
		g.Expect(len(plan.keys)).To(BeNumerically("<=", 4+int(p.accessTokenTTL/p.rotation)), "retired keys leave: %v", plan.keys)
		g.Expect(plan.next.After(now)).To(BeTrue())

		keys = plan.keys
		// Either the moment the planner asked for, or some moment before it (a
		// resync, an edit, a restarted operator).
		step := plan.next.Sub(now)
		if rng.IntN(3) == 0 {
			step = time.Duration(rng.Int64N(int64(step))) + time.Second
		}
		now = now.Add(step).Truncate(time.Second)
	}
	g.Expect(steps).To(BeNumerically(">", 100))
	g.Expect(adds).To(ContainElements(rotationPeriod, rotationRequest, rotationAlgorithm))
	g.Expect(requestedSigned).To(BeNumerically(">", 0), "some requested key came to sign")
}

func TestNewSigningKeyIsWhatTheServerReads(t *testing.T) {
	g := NewWithT(t)
	es, err := newSigningKey(config.SigningES256, t0)
	g.Expect(err).NotTo(HaveOccurred())
	rs, err := newSigningKey(config.SigningRS256, t0.Add(time.Hour))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(es.KeyID).NotTo(Equal(rs.KeyID))
	g.Expect(es.KeyID).To(MatchRegexp(`^[A-Za-z0-9_-]{16}$`))

	data, err := marshalSigningKeys([]config.SigningKey{es, rs})
	g.Expect(err).NotTo(HaveOccurred())
	parsed, err := config.ParseSigningKeys(data)
	g.Expect(err).NotTo(HaveOccurred(), "the server parses what the operator writes")
	g.Expect(parsed).To(HaveLen(2))
	g.Expect(parsed[0].Signer).To(BeAssignableToTypeOf(&ecdsa.PrivateKey{}))
	g.Expect(parsed[1].Signer.(*rsa.PrivateKey).N.BitLen()).To(Equal(2048))
	active, ok := config.ActiveSigningKey(parsed, t0.Add(time.Minute))
	g.Expect(ok).To(BeTrue())
	g.Expect(active.KeyID).To(Equal(es.KeyID))

	back, err := parseSigningKeysSecret(data)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sameKeys(back, []config.SigningKey{es, rs})).To(BeTrue(), "a round trip changes nothing, so a resync writes nothing")
	_, err = parseSigningKeysSecret([]byte(`{"keys":[]}`))
	g.Expect(err).To(MatchError(ContainSubstring("no key")))
	g.Expect(parseSigningKeysSecret(nil)).To(BeEmpty())
	_, err = newSigningKey("HS256", t0)
	g.Expect(err).To(MatchError(ContainSubstring(`"HS256" is not one of ES256, RS256`)))
}

func TestAdminTokens(t *testing.T) {
	g := NewWithT(t)
	a, err := newAdminToken()
	g.Expect(err).NotTo(HaveOccurred())
	b, _ := newAdminToken()
	g.Expect(a).NotTo(Equal(b))
	g.Expect(string(a)).To(MatchRegexp(`^[A-Za-z0-9_-]{43}$`), "base64url of 32 bytes, unpadded")
	g.Expect(validAdminToken(a)).To(BeTrue())
	g.Expect(validAdminToken(append(a, '=', '\n'))).To(BeTrue(), "padding and a newline from a hand-made Secret are fine")
	g.Expect(validAdminToken([]byte("short"))).To(BeFalse())
	g.Expect(validAdminToken(nil)).To(BeFalse())
}
