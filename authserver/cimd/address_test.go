package cimd

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	const (
		public  = iota // always allowed
		private        // allowed only with AllowPrivateAddresses
		never          // always refused
	)
	tests := []struct {
		addr string
		want int
	}{
		{"93.184.215.14", public},
		{"8.8.8.8", public},
		{"2606:4700:4700::1111", public},
		{"::ffff:93.184.215.14", public},   // IPv4-mapped public
		{"64:ff9b::93.184.215.14", public}, // NAT64 of a public address

		{"127.0.0.1", private},
		{"127.10.20.30", private},
		{"::1", private},
		{"::ffff:127.0.0.1", private}, // IPv4-mapped loopback
		{"10.1.2.3", private},
		{"172.16.0.1", private},
		{"172.31.255.255", private},
		{"192.168.1.1", private},
		{"100.64.0.1", private}, // CGNAT
		{"100.127.255.254", private},
		{"fd00::1", private},                // unique local
		{"64:ff9b::10.0.0.1", private},      // NAT64 of a private address
		{"::ffff:192.168.0.1", private},     // IPv4-mapped private
		{"64:ff9b::7f00:1", private},        // NAT64 of loopback
		{"172.32.0.1", public},              // just past 172.16/12
		{"100.128.0.1", public},             // just past 100.64/10
		{"0.0.0.0", never},                  // unspecified
		{"::", never},                       // unspecified
		{"169.254.169.254", never},          // cloud metadata, link-local
		{"::ffff:169.254.169.254", never},   // the same, IPv4-mapped
		{"64:ff9b::169.254.169.254", never}, // the same, through NAT64
		{"fe80::1", never},                  // link-local
		{"fe80::1%eth0", never},             // link-local with zone
		{"224.0.0.1", never},                // multicast
		{"ff02::1", never},                  // multicast
		{"255.255.255.255", never},          // broadcast
		{"240.0.0.1", never},                // reserved
		{"192.0.2.1", never},                // documentation
		{"198.18.0.1", never},               // benchmarking
		{"2001:db8::1", never},              // documentation
		{"2002:c0a8:101::1", never},         // 6to4 embedding 192.168.1.1
		{"2001:0:4136:e378::1", never},      // Teredo
		{"::7f00:1", never},                 // IPv4-compatible (deprecated) loopback
		{"64:ff9b:1::1", never},             // local-use NAT64
		{"100::1", never},                   // discard-only
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tt.addr)
			strict, dev := checkAddress(a, false), checkAddress(a, true)
			wantStrict, wantDev := tt.want == public, tt.want != never
			if (strict == nil) != wantStrict || (dev == nil) != wantDev {
				t.Fatalf("checkAddress(%s): strict=%v dev=%v; want allowed strict=%v dev=%v", tt.addr, strict, dev, wantStrict, wantDev)
			}
			if strict != nil && !errors.Is(strict, errForbiddenAddress) {
				t.Fatalf("error %v does not wrap errForbiddenAddress", strict)
			}
		})
	}
}

func TestFetchRefusesLoopbackWithoutTheDevFlag(t *testing.T) {
	s := newDocServer(t)
	s.serveDoc("/client", nil)
	// The same server, reached by IP literal and by a name that resolves to loopback:
	// the guard judges the address connected to, not the spelling of the host.
	for _, id := range []string{s.url("/client"), strings.Replace(s.url("/client"), "127.0.0.1", "localhost", 1)} {
		f := New(Options{TLSClientConfig: s.tlsConfig()})
		_, err := f.Fetch(context.Background(), id)
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, ErrForbiddenAddress) {
			t.Fatalf("Fetch(%s) = %v, want ErrForbiddenAddress", id, err)
		}
		if strings.Contains(e.Description(), "127.0.0.1") && !strings.Contains(id, "127.0.0.1") {
			t.Errorf("description reveals the resolved address: %q", e.Description())
		}
	}
	if n := s.totalHits(); n != 0 {
		t.Fatalf("the guard let %d requests through", n)
	}

	// The flag lets the same fetch through.
	if _, err := s.fetcher(Options{}).Fetch(context.Background(), s.url("/client")); err != nil {
		t.Fatalf("with AllowPrivateAddresses: %v", err)
	}
}
