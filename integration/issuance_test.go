package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

// TestFleetIssuedTogetherConnectsAtOnce is the README's promise that a new
// certificate is "accepted at once": ten certificates are issued in
// parallel the way the CLI issues them (the same service, without telling
// this gateway, which polls only hourly), and all ten are used at once,
// each on its first try. Several rounds, because a shared lookup budget
// let only one of a batch through.
func TestFleetIssuedTogetherConnectsAtOnce(t *testing.T) {
	g := startGateway(t, "sqlite", "revocation_poll_interval 1h")
	running := g.services().Certificates
	elsewhere := &broker.Certificates{Store: running.Store, Issuer: running.Issuer}
	const fleet, rounds = 10, 3
	for round := range rounds {
		certs := make([]tls.Certificate, fleet)
		var wg sync.WaitGroup
		for i := range fleet {
			wg.Go(func() {
				issued, _, err := elsewhere.Issue(context.Background(), adminActor,
					broker.IssueRequest{ClientID: fmt.Sprintf("proxy-fleet-%d-%d", round, i), Role: "proxy"})
				if err != nil {
					t.Error(err)
					return
				}
				if certs[i], err = tls.X509KeyPair(issued.ChainPEM, issued.PrivateKeyPEM); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		for i := range fleet {
			wg.Go(func() {
				r, err := g.send(g.client(&certs[i]), "POST", "/internal/messages/register",
					registerBody("", "+4915200000012", "fleet"))
				if err != nil || r.Status != http.StatusCreated {
					t.Errorf("round %d, certificate %d on its first try: %v %d %s", round, i, err, r.Status, r.Raw)
				}
			})
		}
		wg.Wait()
	}
}
