package device

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are process-wide, so their counts survive reloads; each config
// load registers them in its fresh registry.
var metrics = struct {
	sessionsOpened  prometheus.Counter
	sessionsFailed  prometheus.Counter
	decryptFailures prometheus.Counter
	messages        *prometheus.CounterVec
}{
	sessionsOpened: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msgbroker_device_sessions_opened_total", Help: "Device sessions opened.",
	}),
	sessionsFailed: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msgbroker_device_sessions_closed_for_failures_total", Help: "Device sessions closed after too many failed decryptions.",
	}),
	decryptFailures: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "msgbroker_device_decryption_failures_total", Help: "Device messages that could not be decrypted.",
	}),
	messages: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "msgbroker_device_messages_total", Help: "Device messages by result (delivered, duplicate, not_found, rejected).",
	}, []string{"result"}),
}

// poolCollector reports a handler's key pool and open sessions.
type poolCollector struct{ h *Handler }

var (
	poolDepthDesc      = prometheus.NewDesc("msgbroker_device_key_pool_depth", "RSA keys ready in the pool.", nil, nil)
	poolRefillsDesc    = prometheus.NewDesc("msgbroker_device_key_pool_refills_total", "RSA keys generated in the background.", nil, nil)
	poolMissesDesc     = prometheus.NewDesc("msgbroker_device_key_pool_misses_total", "RSA keys generated on the request path because the pool was empty.", nil, nil)
	activeSessionsDesc = prometheus.NewDesc("msgbroker_device_sessions_active", "Open device sessions (in-process: including expired ones not yet swept).", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- poolDepthDesc
	ch <- poolRefillsDesc
	ch <- poolMissesDesc
	ch <- activeSessionsDesc
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(poolDepthDesc, prometheus.GaugeValue, float64(c.h.keys.Depth()))
	ch <- prometheus.MustNewConstMetric(poolRefillsDesc, prometheus.CounterValue, float64(c.h.keys.Refills()))
	ch <- prometheus.MustNewConstMetric(poolMissesDesc, prometheus.CounterValue, float64(c.h.keys.Misses()))
	c.h.mu.Lock()
	rt := c.h.rt
	c.h.mu.Unlock()
	if rt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if n, err := rt.sessions.Count(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(activeSessionsDesc, prometheus.GaugeValue, float64(n))
	}
}

// registerMetrics registers the metrics in the config's registry. Only the
// first device handler of a config reports its pool.
func registerMetrics(ctx caddy.Context, h *Handler) {
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{metrics.sessionsOpened, metrics.sessionsFailed, metrics.decryptFailures, metrics.messages, poolCollector{h}} {
		if err := reg.Register(c); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			h.logger.Warn("registering a metric failed")
		}
	}
}
