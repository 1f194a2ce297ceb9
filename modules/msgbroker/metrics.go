package msgbroker

import (
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

// Metrics are the broker's Prometheus collectors (the broker's documented list, under the
// msgbroker_ prefix). The counters are created once per process and shared
// through the usage pool, so their values survive config reloads; each new
// config registers them on its own, fresh registry.
type Metrics struct {
	RequestsTotal       *prometheus.CounterVec
	RequestDuration     *prometheus.HistogramVec
	MessagesRegistered  *prometheus.CounterVec
	MessagesDelivered   *prometheus.CounterVec
	MessagesFailed      *prometheus.CounterVec
	CertificatesIssued  prometheus.Counter
	CertificatesRevoked prometheus.Counter
	HealthChecksTotal   *prometheus.CounterVec
	HandshakeRefusals   *prometheus.CounterVec

	// Portal authentication.
	Logins          *prometheus.CounterVec
	Refreshes       prometheus.Counter
	ReuseDetections prometheus.Counter
	Lockouts        prometheus.Counter
}

// Destruct satisfies caddy.Destructor; counters hold no resources.
func (*Metrics) Destruct() error { return nil }

const metricsPoolKey = "metrics"

func sharedMetrics() (*Metrics, error) {
	val, _, err := pool.LoadOrNew(metricsPoolKey, func() (caddy.Destructor, error) {
		return newMetrics(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("creating metrics: %w", err)
	}
	return val.(*Metrics), nil
}

func releaseMetrics() error {
	_, err := pool.Delete(metricsPoolKey)
	return err
}

func newMetrics() *Metrics {
	const ns = "msgbroker"
	return &Metrics{
		RequestsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "requests_total",
			Help: "Requests handled by the broker's handlers, by method, endpoint and status code.",
		}, []string{"method", "endpoint", "status"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "request_duration_seconds",
			Help:    "Time spent in the broker's handlers, by method and endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method", "endpoint"}),
		MessagesRegistered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "messages_registered_total",
			Help: "Messages registered by proxies, by client id.",
		}, []string{"client_id"}),
		MessagesDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "messages_delivered_total",
			Help: "Messages confirmed delivered by workers, by client id.",
		}, []string{"client_id"}),
		MessagesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "messages_failed_total",
			Help: "Messages reported failed by workers, by client id and reason.",
		}, []string{"client_id", "reason"}),
		CertificatesIssued: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "certificates_issued_total",
			Help: "Client certificates issued.",
		}),
		CertificatesRevoked: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "certificates_revoked_total",
			Help: "Client certificates revoked.",
		}),
		HealthChecksTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "health_checks_total",
			Help: "Health checks answered, by overall status.",
		}, []string{"status"}),
		HandshakeRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "tls_handshake_refusals_total",
			Help: "TLS handshakes refused for their client certificate, by reason (seen by the msgbroker_handshakes listener wrapper).",
		}, []string{"reason"}),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "portal_logins_total",
			Help: "Portal logins, by outcome (success, failure, locked, busy).",
		}, []string{"outcome"}),
		Refreshes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "portal_token_refreshes_total",
			Help: "Refresh tokens exchanged for a new pair.",
		}),
		ReuseDetections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "portal_refresh_reuse_total",
			Help: "Spent refresh tokens presented again (their sessions were revoked).",
		}),
		Lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: ns, Name: "portal_lockouts_total",
			Help: "Accounts and addresses locked out after failed logins.",
		}),
	}
}

// portal returns the portal's counters (none for a nil Metrics, as in the
// CLI).
func (m *Metrics) portal() broker.PortalMetrics {
	if m == nil {
		return broker.PortalMetrics{}
	}
	return broker.PortalMetrics{Logins: m.Logins, Refreshes: m.Refreshes, ReuseDetections: m.ReuseDetections, Lockouts: m.Lockouts}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.RequestsTotal, m.RequestDuration, m.MessagesRegistered, m.MessagesDelivered,
		m.MessagesFailed, m.CertificatesIssued, m.CertificatesRevoked,
		m.HealthChecksTotal, m.HandshakeRefusals, m.Logins, m.Refreshes, m.ReuseDetections, m.Lockouts,
	}
}

// register adds the shared counters and this config's pool gauges to reg.
// A registry normally is fresh for each config load; an already registered
// collector is not an error, so a module provisioned twice stays harmless.
func (m *Metrics) register(reg *prometheus.Registry, a *App) error {
	if reg == nil {
		return nil
	}
	for _, c := range append(m.collectors(), dbStatsCollector{app: a}, certificatesCollector{app: a}) {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return fmt.Errorf("registering metrics: %w", err)
			}
		}
	}
	return nil
}

// dbStatsCollector reports the connection pool of this config's database.
type dbStatsCollector struct{ app *App }

var (
	dbConnectionsDesc = prometheus.NewDesc("msgbroker_db_connections",
		"Connections of the broker's database pool, by state (open, in_use, idle).", []string{"state"}, nil)
	dbWaitDesc = prometheus.NewDesc("msgbroker_db_wait_total",
		"Times a query waited for a free database connection.", nil, nil)
)

func (c dbStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- dbConnectionsDesc
	ch <- dbWaitDesc
}

func (c dbStatsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.app.startup.ready()
	if s == nil {
		return
	}
	st := s.Store.DB.Stats()
	ch <- prometheus.MustNewConstMetric(dbConnectionsDesc, prometheus.GaugeValue, float64(st.OpenConnections), "open")
	ch <- prometheus.MustNewConstMetric(dbConnectionsDesc, prometheus.GaugeValue, float64(st.InUse), "in_use")
	ch <- prometheus.MustNewConstMetric(dbConnectionsDesc, prometheus.GaugeValue, float64(st.Idle), "idle")
	ch <- prometheus.MustNewConstMetric(dbWaitDesc, prometheus.CounterValue, float64(st.WaitCount))
}

// certificatesCollector reports the certificates this node's registry
// holds, which it keeps fresh from the database: unlike the issued and
// revoked counters, it includes what the CLI and other nodes did.
type certificatesCollector struct{ app *App }

var certificatesDesc = prometheus.NewDesc("msgbroker_certificates",
	"Client certificates in the registry, by status (active, revoked, expired) and role.", []string{"status", "role"}, nil)

func (c certificatesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certificatesDesc }

func (c certificatesCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.app.startup.ready()
	if s == nil {
		return
	}
	for kind, n := range s.Registry.Counts() {
		ch <- prometheus.MustNewConstMetric(certificatesDesc, prometheus.GaugeValue, float64(n), kind.Status, kind.Role)
	}
}
