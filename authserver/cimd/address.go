package cimd

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"
)

// The SSRF guard. The draft (§"Server Side Request Forgery (SSRF) Attacks") forbids
// fetching from special-use addresses (RFC 6890). The check runs in the dialer's
// Control hook, on the address actually being connected to, after DNS resolution:
// checking the host name before the request would be defeated by DNS rebinding, and
// checking the URL's IP literal would miss names that resolve to private addresses.

// privateRanges are refused unless AllowPrivateAddresses is set: the addresses of a
// developer's machine and of the network the server runs in.
var privateRanges = prefixes(
	"127.0.0.0/8",    // loopback (RFC 1122)
	"10.0.0.0/8",     // private (RFC 1918)
	"172.16.0.0/12",  // private (RFC 1918)
	"192.168.0.0/16", // private (RFC 1918)
	"100.64.0.0/10",  // shared address space, CGNAT (RFC 6598); also some clusters' pod networks
	"::1/128",        // loopback
	"fc00::/7",       // unique local (RFC 4193)
)

// specialRanges are always refused: no document can legitimately live there, and
// some (link-local 169.254.169.254, the cloud metadata service) are prime SSRF
// targets even on a developer's machine.
var specialRanges = prefixes(
	"0.0.0.0/8",       // "this network", unspecified (RFC 1122)
	"169.254.0.0/16",  // link-local, cloud metadata (RFC 3927)
	"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
	"192.0.2.0/24",    // documentation TEST-NET-1 (RFC 5737)
	"192.88.99.0/24",  // 6to4 relay anycast (RFC 7526)
	"198.18.0.0/15",   // benchmarking (RFC 2544)
	"198.51.100.0/24", // documentation TEST-NET-2
	"203.0.113.0/24",  // documentation TEST-NET-3
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, and 255.255.255.255 broadcast
	"::/128",          // unspecified
	"100::/64",        // discard-only (RFC 6666)
	"2001::/23",       // IETF protocol assignments, Teredo included (RFC 2928, 4380)
	"2001:db8::/32",   // documentation (RFC 3849)
	"2002::/16",       // 6to4, which embeds arbitrary IPv4 addresses (RFC 3056)
	"3fff::/20",       // documentation (RFC 9637)
	"fe80::/10",       // link-local
	"ff00::/8",        // multicast
	"64:ff9b:1::/48",  // local-use NAT64 (RFC 8215)
)

// nat64 is the well-known NAT64 prefix (RFC 6052): its last 32 bits are an IPv4
// address, which is judged instead.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// globalUnicast is the only IPv6 space allocated for public use (RFC 4291); all else
// in IPv6 is special or unassigned.
var globalUnicast = netip.MustParsePrefix("2000::/3")

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// errForbiddenAddress marks the guard's refusal inside the dial error chain.
var errForbiddenAddress = errors.New("forbidden address")

// checkAddress returns nil if the server may connect to addr.
func checkAddress(addr netip.Addr, allowPrivate bool) error {
	addr = addr.Unmap().WithZone("")
	if nat64.Contains(addr) {
		b := addr.As16()
		addr = netip.AddrFrom4([4]byte(b[12:16]))
	}
	for _, p := range specialRanges {
		if p.Contains(addr) {
			return fmt.Errorf("%w: %s is in special-use range %s", errForbiddenAddress, addr, p)
		}
	}
	if addr.Is6() && !globalUnicast.Contains(addr) && !privateRangesContain(addr) {
		return fmt.Errorf("%w: %s is not global unicast", errForbiddenAddress, addr)
	}
	if !allowPrivate && privateRangesContain(addr) {
		return fmt.Errorf("%w: %s is loopback or private", errForbiddenAddress, addr)
	}
	return nil
}

func privateRangesContain(addr netip.Addr) bool {
	for _, p := range privateRanges {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// dialControl is a net.Dialer Control hook enforcing checkAddress on every
// connection attempt, including each address Happy Eyeballs tries.
func dialControl(allowPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: cannot parse %q", errForbiddenAddress, address)
		}
		return checkAddress(ap.Addr(), allowPrivate)
	}
}
