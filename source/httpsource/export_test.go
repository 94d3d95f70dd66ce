package httpsource

import "net/netip"

// WithPublicForTest returns o with more addresses declared public for the
// dial policy, so that a test server on a loopback address can play an
// outside one.
func WithPublicForTest(o Options, public func(netip.Addr) bool) Options {
	o.publicForTest = public
	return o
}

// PublicAddr exposes publicAddr to the tests.
var PublicAddr = publicAddr
