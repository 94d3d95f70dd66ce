package httpsource

import (
	"net/http"
	"time"
)

// ObserveFunc receives one sent request's outcome: its method, the host it went
// to, the response status (0 when no response came), the transport error (nil when
// a response came, whatever its status) and the time until the response headers.
// It is Options.Observe's type, so that the deployment's metrics see every request
// without the source knowing about them.
type ObserveFunc func(method, host string, status int, err error, d time.Duration)

// observed wraps rt so that every round trip is reported to observe (rt itself when
// observe is nil). Wrapping the client's transport, rather than the source's own
// request loop, is what makes retries, token requests and redirect hops count.
func observed(rt http.RoundTripper, observe ObserveFunc) http.RoundTripper {
	if observe == nil {
		return rt
	}
	return &observingTransport{rt: rt, observe: observe}
}

// observingTransport is the RoundTripper observed returns.
type observingTransport struct {
	rt      http.RoundTripper
	observe ObserveFunc
}

// RoundTrip sends req with the wrapped transport and reports it.
func (t *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.rt.RoundTrip(req)
	status := 0
	if err == nil && resp != nil {
		status = resp.StatusCode
	}
	t.observe(req.Method, req.URL.Host, status, err, time.Since(start))
	return resp, err
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on to the wrapped
// transport, which holds the connections.
func (t *observingTransport) CloseIdleConnections() {
	if c, ok := t.rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
