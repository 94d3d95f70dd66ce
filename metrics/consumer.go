package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Consumer lag metric names, for dashboards and alerts that refer to them.
const (
	// ConsumerPendingMessages is the number of events in the stream that the
	// workers' durable consumer has not delivered yet: the backlog.
	ConsumerPendingMessages = "configsync_queue_consumer_pending_messages"
	// ConsumerAckPendingMessages is the number of events delivered to a worker and
	// not acknowledged yet: the work in progress (and events waiting out AckWait).
	ConsumerAckPendingMessages = "configsync_queue_consumer_ack_pending_messages"
	// ConsumerRedeliveredMessages is the number of events delivered more than once
	// and not acknowledged yet: retries in progress.
	ConsumerRedeliveredMessages = "configsync_queue_consumer_redelivered_messages"
)

// ConsumerNames lists every metric family name NewConsumerLag registers.
var ConsumerNames = []string{ConsumerPendingMessages, ConsumerAckPendingMessages, ConsumerRedeliveredMessages}

// ConsumerReadTimeout bounds one read of the consumer's state at scrape time, so
// that a NATS outage slows a scrape by at most this much.
const ConsumerReadTimeout = 5 * time.Second

// ConsumerInfoFunc reads the durable consumer's state: events not yet delivered,
// delivered and not acknowledged, and redelivered and not acknowledged
// (queue.Queue.ConsumerInfo is one).
type ConsumerInfoFunc func(ctx context.Context) (pending, ackPending, redelivered uint64, err error)

// consumerLag is the collector NewConsumerLag registers: it reads the consumer's
// state at every scrape, so the values are never older than the scrape.
type consumerLag struct {
	read                             ConsumerInfoFunc
	pending, ackPending, redelivered *prometheus.Desc
}

// NewConsumerLag registers on reg a collector of the workers' consumer lag, read by
// read at each scrape (bounded by ConsumerReadTimeout). When the read fails, the
// scrape succeeds without these three series, so that their absence (not a stale
// value) shows that NATS did not answer. It panics when they are already
// registered there.
func NewConsumerLag(reg prometheus.Registerer, read ConsumerInfoFunc) {
	reg.MustRegister(&consumerLag{
		read: read,
		pending: prometheus.NewDesc(ConsumerPendingMessages,
			"Events in the commands stream not yet delivered to any worker (the backlog), read at scrape time.", nil, nil),
		ackPending: prometheus.NewDesc(ConsumerAckPendingMessages,
			"Events delivered to a worker and not acknowledged yet, read at scrape time.", nil, nil),
		redelivered: prometheus.NewDesc(ConsumerRedeliveredMessages,
			"Events delivered more than once and not acknowledged yet, read at scrape time.", nil, nil),
	})
}

// Describe sends the three descriptors.
func (c *consumerLag) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.ackPending
	ch <- c.redelivered
}

// Collect reads the consumer's state and sends the three gauges, or nothing when
// the read fails.
func (c *consumerLag) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), ConsumerReadTimeout)
	defer cancel()
	pending, ackPending, redelivered, err := c.read(ctx)
	if err != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(c.ackPending, prometheus.GaugeValue, float64(ackPending))
	ch <- prometheus.MustNewConstMetric(c.redelivered, prometheus.GaugeValue, float64(redelivered))
}
