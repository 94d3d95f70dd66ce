package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's own Prometheus metrics, labelled by route pattern (never by
// raw path, so that ids do not multiply series), method and status code.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	handler  http.Handler
}

// newMetrics registers the API's metrics in a registry of its own. /metrics serves
// that registry, together with extra when it is set; without extra the registry also
// carries the Go and process collectors.
func newMetrics(extra prometheus.Gatherer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "configsync", Subsystem: "api", Name: "requests_total",
			Help: "HTTP requests answered by the API, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "configsync", Subsystem: "api", Name: "request_duration_seconds",
			Help:    "Time to answer an API request, by route pattern, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "code"}),
	}
	reg := prometheus.NewRegistry()
	cs := []prometheus.Collector{m.requests, m.duration}
	if extra == nil {
		cs = append(cs, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: registering metrics: %w", err)
		}
	}
	var g prometheus.Gatherer = reg
	if extra != nil {
		g = prometheus.Gatherers{extra, reg}
	}
	m.handler = promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	return m, nil
}

// observe counts and times one answered request.
func (m *metrics) observe(route, method string, code int, took time.Duration) {
	c := strconv.Itoa(code)
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other" // a client picks the method: keep the label's values bounded
	}
	m.requests.WithLabelValues(route, method, c).Inc()
	m.duration.WithLabelValues(route, method, c).Observe(took.Seconds())
}

func (s *server) serveMetrics(w http.ResponseWriter, r *http.Request, _ *call) error {
	s.metrics.handler.ServeHTTP(w, r)
	return nil
}
