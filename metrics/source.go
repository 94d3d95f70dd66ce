package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source metric names, for dashboards and alerts that refer to them.
const (
	// SourceRequestsTotal counts requests sent to the tools by sources, by source
	// type and status (the HTTP status code, or "error" when no response came).
	SourceRequestsTotal = "configsync_source_requests_total"
	// SourceRequestDurationSeconds is a histogram of the time until a tool's response
	// headers arrived (or the request failed), by source type.
	SourceRequestDurationSeconds = "configsync_source_request_duration_seconds"
)

// SourceNames lists every metric family name NewSource registers.
var SourceNames = []string{SourceRequestsTotal, SourceRequestDurationSeconds}

// StatusError is SourceRequestsTotal's status for a request that got no response
// (refused address, time-out, connection reset).
const StatusError = "error"

// SourceRequestBuckets are the request duration histogram's buckets, in seconds:
// from 5ms (a local tool) to the 30s an overloaded API may take.
var SourceRequestBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Source is the collectors of the requests sources send to the tools, so that a
// slow or failing tool shows on the dashboard before its runs fail. A nil *Source
// records nothing.
type Source struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewSource creates the source request collectors and registers them on reg. It
// panics when one is already registered there (as prometheus.MustRegister does).
func NewSource(reg prometheus.Registerer) *Source {
	m := &Source{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SourceRequestsTotal, Help: "Requests sent to the tools by sources (retries included), by source type and status (HTTP code, or \"error\" without a response).",
		}, []string{"type", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: SourceRequestDurationSeconds, Help: "Time until a tool's response headers arrived or the request failed, by source type.",
			Buckets: SourceRequestBuckets,
		}, []string{"type"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

// Request records one request of a source of type typ: its status (ignored when err
// is not nil: the request got no response) and how long it took.
func (m *Source) Request(typ string, status int, err error, d time.Duration) {
	if m == nil {
		return
	}
	label := StatusError
	if err == nil {
		label = strconv.Itoa(status)
	}
	m.requests.WithLabelValues(typ, label).Inc()
	m.duration.WithLabelValues(typ).Observe(d.Seconds())
}

// Observer returns Request for sources of type typ in the shape of
// httpsource.Options.Observe (method and host are not labels: hosts are chosen by
// integrations, and would make the series unbounded). It is nil for a nil *Source,
// so that the source then skips observing altogether.
func (m *Source) Observer(typ string) func(method, host string, status int, err error, d time.Duration) {
	if m == nil {
		return nil
	}
	return func(_, _ string, status int, err error, d time.Duration) { m.Request(typ, status, err, d) }
}
