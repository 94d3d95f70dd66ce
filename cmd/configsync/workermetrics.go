package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/configsync/configsync/metrics"
	"github.com/configsync/configsync/source"
	"github.com/configsync/configsync/source/httpsource"
	"github.com/configsync/configsync/worker"
)

// instrumentWorker registers w's metrics on reg: its runs, entities and dead letters
// (metrics.New), every request its http sources send (metrics.NewSource, through
// httpsource.Options.Observe) and the shared consumer's lag, read from NATS at each
// scrape (metrics.NewConsumerLag). The http source type of st's registry is replaced
// by an observed one with the same address policy; w and st then share it.
func instrumentWorker(reg prometheus.Registerer, w *worker.Worker, st *stack, httpAllowPrivate bool) {
	w.Metrics = metrics.New(reg)
	requests := metrics.NewSource(reg)
	types := st.sources.Types()
	for i, t := range types {
		if t.ID == httpsource.TypeID {
			types[i] = httpsource.Type(httpsource.Options{AllowPrivate: httpAllowPrivate, Observe: requests.Observer(httpsource.TypeID)})
		}
	}
	st.sources = source.NewRegistry(types...)
	w.Sources = st.sources
	metrics.NewConsumerLag(reg, st.q.ConsumerInfo)
}
