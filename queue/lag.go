package queue

import (
	"context"
	"fmt"
)

// ConsumerInfo reads the shared workers consumer's state from the server: events
// not delivered yet (the backlog), delivered and not acknowledged, and redelivered
// and not acknowledged. It is what the workers' lag metrics report
// (metrics.NewConsumerLag), so that a growing backlog can be alerted on.
func (q *Queue) ConsumerInfo(ctx context.Context) (pending, ackPending, redelivered uint64, err error) {
	info, err := q.workers().Info(ctx)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("queue: reading the state of consumer %s on %s: %w", WorkersConsumer, CommandsStream, err)
	}
	return info.NumPending, uint64(max(0, info.NumAckPending)), uint64(max(0, info.NumRedelivered)), nil
}
