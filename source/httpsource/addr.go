package httpsource

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// nonPublic lists the prefixes refused unless Options.AllowPrivate, beyond
// what netip.Addr's predicates name (loopback, private, link-local,
// unspecified, multicast).
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),          // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),      // carrier-grade NAT, often internal
	netip.MustParsePrefix("192.0.0.0/24"),       // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),      // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),        // reserved, and the broadcast address
	netip.MustParsePrefix("64:ff9b:1::/48"),     // local-use NAT64
	netip.MustParsePrefix("100::/64"),           // discard
	netip.MustParsePrefix("2001:db8::/32"),      // documentation
	netip.MustParsePrefix("fec0::/10"),          // deprecated site-local
	netip.MustParsePrefix("2001::/32"),          // Teredo: tunnels to any IPv4
	netip.MustParsePrefix("2002::/16"),          // 6to4: embeds an IPv4 address
	netip.MustParsePrefix("::ffff:0:0:0/96"),    // IPv4-translated
	netip.MustParsePrefix("64:ff9b::/96"),       // NAT64, checked by its embedded IPv4 below
	netip.MustParsePrefix("::/128"),             // unspecified (also caught below)
	netip.MustParsePrefix("169.254.0.0/16"),     // link-local, cloud metadata (also caught below)
	netip.MustParsePrefix("fe80::/10"),          // link-local (also caught below)
	netip.MustParsePrefix("fc00::/7"),           // unique local (also caught below)
	netip.MustParsePrefix("255.255.255.255/32"), // broadcast
}

// nat64 is the well-known NAT64 prefix: an address in it reaches the IPv4
// address in its last 32 bits, which is what must be checked.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// publicAddr reports whether ip may be dialled when private addresses are
// refused.
func publicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() && nat64.Contains(ip) {
		b := ip.As16()
		return publicAddr(netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}))
	}
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() ||
		ip.IsMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// dialControl returns the net.Dialer Control that refuses non-public
// addresses. It runs on every connection attempt with the resolved address,
// after DNS and for every redirect, so neither a DNS answer nor a Location
// header can lead inward. publicForTest, when set, declares more addresses
// public (tests only).
func dialControl(publicForTest func(netip.Addr) bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("dialling %s: %w", address, ErrAddressNotAllowed)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("dialling %s: not an IP address: %w", host, ErrAddressNotAllowed)
		}
		ip = ip.WithZone("").Unmap()
		if publicAddr(ip) || (publicForTest != nil && publicForTest(ip)) {
			return nil
		}
		return fmt.Errorf("%s is not a public address (this deployment refuses loopback, private, link-local and similar addresses): %w", ip, ErrAddressNotAllowed)
	}
}
