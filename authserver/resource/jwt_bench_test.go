package resource

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// BenchmarkVerifyJWT is the cost of verifying a JWT access token per request:
// "cached" is a token seen before (the common case: a client sends the same token
// for its whole lifetime), which costs a hash, two map lookups and a copy of the
// Info; "ES256" and "RS256" are the first sight of a token, its signature and
// claims checked. go test ./authserver/resource -run '^$' -bench VerifyJWT
func BenchmarkVerifyJWT(b *testing.B) {
	as := newFakeAS(b)
	clock := newClock()
	es, rs := newKey(b, "es", jose.ES256), newKey(b, "rs", jose.RS256)
	as.publish(es, rs)
	v := newTestVerifier(b, as, clock, nil)
	b.Cleanup(func() { _ = v.Close() })
	if err := v.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()

	b.Run("cached", func(b *testing.B) {
		tok := mint(b, es, as.claims(clock.Now(), nil))
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, k := range []*testKey{es, rs} {
		b.Run(string(k.alg), func(b *testing.B) {
			tok := mint(b, k, as.claims(clock.Now(), nil))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.checkJWT(ctx, tok, clock.Now()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
