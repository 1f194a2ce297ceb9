package certregistry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"maps"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// leaf makes a real certificate with the given serial and CN.
func leaf(t *testing.T, serial int64, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

type fixture struct {
	t     *testing.T
	repo  *storage.ClientRepo
	reg   *Registry
	ctx   context.Context
	clock time.Time
}

func newFixture(t *testing.T) *fixture {
	repo := storage.New(storagetest.OpenSQLite(t)).Clients
	f := &fixture{t: t, repo: repo, reg: NewRegistry(repo, zap.NewNop()), ctx: context.Background(), clock: time.Now()}
	f.reg.now = func() time.Time { return f.clock }
	return f
}

// register stores cert as issued, with updated_at written by a clock off
// by skew.
func (f *fixture) register(cert *x509.Certificate, skew time.Duration) {
	f.t.Helper()
	stamp := time.Now().Add(skew)
	err := f.repo.Insert(f.ctx, &storage.Client{
		ClientID: cert.Subject.CommonName, SerialNumber: clientca.SerialHex(cert.SerialNumber),
		FingerprintSHA256: clientca.Fingerprint(cert), Role: storage.ClientRoleProxy, Status: storage.ClientActive,
		Subject: "CN=" + cert.Subject.CommonName, IssuedAt: cert.NotBefore, NotAfter: cert.NotAfter, CreatedBy: "test",
		CreatedAt: stamp, UpdatedAt: stamp,
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) revoke(cert *x509.Certificate) {
	f.t.Helper()
	if err := f.repo.Revoke(f.ctx, clientca.SerialHex(cert.SerialNumber), "test", time.Now()); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) refresh() {
	f.t.Helper()
	if err := f.reg.Refresh(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

func TestCheckRefusesUnknownRevokedAndForeignCertificates(t *testing.T) {
	f := newFixture(t)
	good, revoked := leaf(t, 1, "proxy-a"), leaf(t, 2, "proxy-b")
	f.register(good, 0)
	f.register(revoked, 0)
	if _, err := f.reg.Check(good); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before loading: %v", err)
	}
	f.revoke(revoked)
	f.refresh()
	cases := map[string]struct {
		cert *x509.Certificate
		want error
	}{
		"active":                 {good, nil},
		"revoked":                {revoked, ErrRevoked},
		"unknown serial":         {leaf(t, 3, "proxy-a"), ErrUnknown},
		"same serial, other key": {leaf(t, 1, "proxy-a"), ErrMismatch},
		"same serial, other CN":  {leaf(t, 1, "proxy-z"), ErrMismatch},
	}
	for name, tc := range cases {
		if _, err := f.reg.Check(tc.cert); !errors.Is(err, tc.want) {
			t.Errorf("%s: Check = %v, want %v", name, err, tc.want)
		}
	}
	f.clock = good.NotAfter.Add(time.Second)
	if _, err := f.reg.Check(good); !errors.Is(err, ErrExpired) {
		t.Errorf("after NotAfter: %v, want ErrExpired", err)
	}
}

// TestRevocationIsSeenDespiteAFastClockElsewhere: a node whose clock runs
// an hour fast wrote one row, which moves the poll cursor into the future;
// a revocation written by a correct clock must still take effect, at once
// when announced and within fullReloadEvery when only polled.
func TestRevocationIsSeenDespiteAFastClockElsewhere(t *testing.T) {
	f := newFixture(t)
	fast, victim, other := leaf(t, 10, "proxy-fast"), leaf(t, 11, "proxy-v"), leaf(t, 12, "proxy-o")
	f.register(fast, time.Hour)
	f.register(victim, 0)
	f.register(other, 0)
	f.refresh()

	f.revoke(victim)
	if err := f.reg.RefreshSerial(f.ctx, clientca.SerialHex(victim.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Check(victim); !errors.Is(err, ErrRevoked) {
		t.Fatalf("announced revocation not applied: %v", err)
	}

	f.revoke(other)
	f.refresh() // incremental: the skewed cursor hides the change
	f.clock = f.clock.Add(fullReloadEvery)
	f.refresh() // full reload
	if _, err := f.reg.Check(other); !errors.Is(err, ErrRevoked) {
		t.Fatalf("polled revocation not applied after a full reload: %v", err)
	}
}

// TestOlderSnapshotDoesNotUndoARevocation applies a stale row after the
// revoked one: the newer state must win.
func TestOlderSnapshotDoesNotUndoARevocation(t *testing.T) {
	f := newFixture(t)
	cert := leaf(t, 20, "proxy-s")
	f.register(cert, 0)
	f.refresh()
	stale, err := f.repo.GetBySerial(f.ctx, clientca.SerialHex(cert.SerialNumber))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	f.revoke(cert)
	if err := f.reg.RefreshSerial(f.ctx, clientca.SerialHex(cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	f.reg.mu.Lock()
	f.reg.apply(*stale)
	f.reg.mu.Unlock()
	if _, err := f.reg.Check(cert); !errors.Is(err, ErrRevoked) {
		t.Fatalf("a stale snapshot re-activated a revoked certificate: %v", err)
	}
}

// countingSource counts serial lookups and can hold them until released,
// so a test can pile concurrent handshakes onto one lookup.
type countingSource struct {
	Source
	lookups atomic.Int64
	hold    chan struct{}
}

func (s *countingSource) GetBySerial(ctx context.Context, serial string) (*storage.Client, error) {
	s.lookups.Add(1)
	if s.hold != nil {
		<-s.hold
	}
	return s.Source.GetBySerial(ctx, serial)
}

func newCountingFixture(t *testing.T) (*fixture, *countingSource) {
	f := newFixture(t)
	src := &countingSource{Source: f.repo}
	f.reg.source = src
	return f, src
}

// TestCertificatesIssuedTogetherAreAllAcceptedAtOnce: ten certificates
// issued after the last refresh, each seen first in a handshake, are all
// accepted on their first check; one unknown serial does not use up the
// lookup of another.
func TestCertificatesIssuedTogetherAreAllAcceptedAtOnce(t *testing.T) {
	f := newFixture(t)
	f.refresh()
	var certs []*x509.Certificate
	for i := range 10 {
		cert := leaf(t, int64(100+i), fmt.Sprintf("proxy-%d", i))
		f.register(cert, 0)
		certs = append(certs, cert)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(certs))
	for i, cert := range certs {
		wg.Go(func() { _, errs[i] = f.reg.CheckFresh(f.ctx, cert) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("certificate %d issued a moment ago: %v", i, err)
		}
	}
}

// TestConcurrentChecksOfOneNewSerialShareOneLookup: a fleet connecting with
// the same new certificate costs the database one query.
func TestConcurrentChecksOfOneNewSerialShareOneLookup(t *testing.T) {
	f, src := newCountingFixture(t)
	f.refresh()
	cert := leaf(t, 40, "proxy-shared")
	f.register(cert, 0)
	src.hold = make(chan struct{})
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := f.reg.CheckFresh(f.ctx, cert)
			errs <- err
		})
	}
	for src.lookups.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others join the lookup under way
	close(src.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("CheckFresh = %v", err)
		}
	}
	if got := src.lookups.Load(); got != 1 {
		t.Errorf("%d concurrent checks of one serial made %d lookups, want 1", n, got)
	}
}

// TestUnknownSerialIsLookedUpAtMostOncePerInterval: a serial the database
// does not have either is not looked up again until missRefreshInterval
// has passed, while another serial is looked up meanwhile.
func TestUnknownSerialIsLookedUpAtMostOncePerInterval(t *testing.T) {
	f, src := newCountingFixture(t)
	f.refresh()
	ghost, other := leaf(t, 50, "proxy-ghost"), leaf(t, 51, "proxy-other")
	for range 3 {
		if _, err := f.reg.CheckFresh(f.ctx, ghost); !errors.Is(err, ErrUnknown) {
			t.Fatalf("unregistered serial: %v, want ErrUnknown", err)
		}
	}
	if got := src.lookups.Load(); got != 1 {
		t.Fatalf("3 checks within the interval made %d lookups, want 1", got)
	}
	f.register(other, 0)
	if _, err := f.reg.CheckFresh(f.ctx, other); err != nil {
		t.Fatalf("another serial within the interval: %v", err)
	}
	f.register(ghost, 0)
	f.clock = f.clock.Add(missRefreshInterval - time.Nanosecond)
	if _, err := f.reg.CheckFresh(f.ctx, ghost); !errors.Is(err, ErrUnknown) {
		t.Fatalf("looked up again before the interval passed: %v", err)
	}
	f.clock = f.clock.Add(time.Nanosecond)
	if _, err := f.reg.CheckFresh(f.ctx, ghost); err != nil {
		t.Fatalf("after the interval the serial is looked up again: %v", err)
	}
	if got := src.lookups.Load(); got != 3 {
		t.Errorf("lookups = %d, want 3 (ghost twice, other once)", got)
	}
}

// TestFloodOfUnknownSerialsStaysBounded: serials the database does not
// have are remembered only up to maxPendingMisses; past that, further
// unknown serials are refused without a lookup until the interval passes.
func TestFloodOfUnknownSerialsStaysBounded(t *testing.T) {
	f, src := newCountingFixture(t)
	f.refresh()
	for i := range maxPendingMisses + 10 {
		if _, err := f.reg.CheckFresh(f.ctx, leaf(t, int64(1000+i), "flood")); !errors.Is(err, ErrUnknown) {
			t.Fatalf("flood serial %d: %v", i, err)
		}
	}
	if got := src.lookups.Load(); got != maxPendingMisses {
		t.Errorf("lookups = %d, want %d", got, maxPendingMisses)
	}
	if got := len(f.reg.misses.last); got != maxPendingMisses {
		t.Errorf("remembered misses = %d, want %d", got, maxPendingMisses)
	}
	f.clock = f.clock.Add(missRefreshInterval)
	late := leaf(t, 99999, "proxy-late")
	f.register(late, 0)
	if _, err := f.reg.CheckFresh(f.ctx, late); err != nil {
		t.Fatalf("after the interval a new certificate is looked up again: %v", err)
	}
	if got := len(f.reg.misses.last); got != 1 {
		t.Errorf("remembered misses after the interval = %d, want 1 (the stale ones dropped)", got)
	}
}

// TestFailedLookupRefusesAsUnknown: a database error
// while looking up refuses the certificate as unknown.
func TestFailedLookupRefusesAsUnknown(t *testing.T) {
	f := newFixture(t)
	f.refresh()
	f.reg.source = failingSource{}
	cert := leaf(t, 60, "proxy-down")
	if _, err := f.reg.CheckFresh(f.ctx, cert); !errors.Is(err, ErrUnknown) {
		t.Fatalf("lookup failed: %v, want ErrUnknown", err)
	}
}

type failingSource struct{ Source }

func (failingSource) GetBySerial(context.Context, string) (*storage.Client, error) {
	return nil, errors.New("database down")
}

func TestCheckFreshPassesOtherRefusalsThrough(t *testing.T) {
	f, src := newCountingFixture(t)
	if _, err := f.reg.CheckFresh(f.ctx, leaf(t, 70, "x")); !errors.Is(err, ErrNotReady) {
		t.Fatalf("before loading: %v, want ErrNotReady", err)
	}
	revoked := leaf(t, 71, "proxy-r")
	f.register(revoked, 0)
	f.revoke(revoked)
	f.refresh()
	if _, err := f.reg.CheckFresh(f.ctx, revoked); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked: %v", err)
	}
	if got := src.lookups.Load(); got != 0 {
		t.Errorf("known or unready serials made %d lookups", got)
	}
}

func TestCountsByStatusAndRole(t *testing.T) {
	f := newFixture(t)
	active, revoked, expiring := leaf(t, 80, "proxy-1"), leaf(t, 81, "proxy-2"), leaf(t, 82, "proxy-3")
	for _, c := range []*x509.Certificate{active, revoked, expiring} {
		f.register(c, 0)
	}
	worker := leaf(t, 83, "worker-1")
	stamp := time.Now()
	if err := f.repo.Insert(f.ctx, &storage.Client{
		ClientID: "worker-1", SerialNumber: clientca.SerialHex(worker.SerialNumber),
		FingerprintSHA256: clientca.Fingerprint(worker), Role: storage.ClientRoleWorker, Status: storage.ClientActive,
		Subject: "CN=worker-1", IssuedAt: worker.NotBefore, NotAfter: worker.NotAfter.Add(time.Hour), CreatedBy: "test",
		CreatedAt: stamp, UpdatedAt: stamp,
	}); err != nil {
		t.Fatal(err)
	}
	f.revoke(revoked)
	f.refresh()
	want := map[Kind]int{
		{storage.ClientActive, storage.ClientRoleProxy}:  2,
		{storage.ClientRevoked, storage.ClientRoleProxy}: 1,
		{storage.ClientActive, storage.ClientRoleWorker}: 1,
	}
	if got := f.reg.Counts(); !maps.Equal(got, want) {
		t.Errorf("Counts = %v, want %v", got, want)
	}
	f.clock = expiring.NotAfter.Add(time.Minute) // the worker's lasts an hour longer
	want = map[Kind]int{
		{"expired", storage.ClientRoleProxy}:             2,
		{storage.ClientRevoked, storage.ClientRoleProxy}: 1,
		{storage.ClientActive, storage.ClientRoleWorker}: 1,
	}
	if got := f.reg.Counts(); !maps.Equal(got, want) {
		t.Errorf("after NotAfter: Counts = %v, want %v", got, want)
	}
}

// sinceSource records the cursor of every read of changed rows.
type sinceSource struct {
	Source
	mu     sync.Mutex
	sinces []time.Time
}

func (s *sinceSource) ChangedSince(ctx context.Context, t time.Time) ([]storage.Client, error) {
	s.mu.Lock()
	s.sinces = append(s.sinces, t)
	s.mu.Unlock()
	return s.Source.ChangedSince(ctx, t)
}

// TestPollReadsOnlyRecentChangesWithAnOverlap: between full reloads the
// poll reads rows changed since the newest stamp seen, less pollOverlap,
// so a row committed late with an older stamp is still picked up.
func TestPollReadsOnlyRecentChangesWithAnOverlap(t *testing.T) {
	f := newFixture(t)
	src := &sinceSource{Source: f.repo}
	f.reg.source = src
	first, late := leaf(t, 90, "proxy-first"), leaf(t, 91, "proxy-late")
	f.register(first, 0)
	f.refresh() // full
	f.register(late, -time.Minute)
	f.clock = f.clock.Add(fullReloadEvery - time.Nanosecond)
	f.refresh() // incremental
	if len(src.sinces) != 2 || !src.sinces[0].IsZero() || src.sinces[1].IsZero() {
		t.Fatalf("reads since %v, want a full read then an incremental one", src.sinces)
	}
	f.reg.mu.RLock()
	cursor := f.reg.cursor
	f.reg.mu.RUnlock()
	if got := src.sinces[1]; !got.Equal(cursor.Add(-pollOverlap)) {
		t.Errorf("incremental read since %v, want %v less the overlap", got, cursor)
	}
	if _, err := f.reg.Check(late); err != nil {
		t.Fatalf("a row stamped a minute before the cursor was missed: %v", err)
	}
}

// TestRunPollsAndAppliesAnnouncements runs the refresh loop: without
// Redis the poll picks up a new certificate; with Redis a published serial
// is applied at once although the poll is hourly; a failing refresh is
// logged and the loop goes on; Announce applies locally and tells the
// other nodes.
func TestRunPollsAndAppliesAnnouncements(t *testing.T) {
	t.Run("poll", func(t *testing.T) {
		f := newFixture(t)
		f.refresh()
		ctx, cancel := context.WithCancel(f.ctx)
		done := make(chan struct{})
		go func() { f.reg.Run(ctx, 5*time.Millisecond, nil); close(done) }()
		cert := leaf(t, 200, "proxy-polled")
		f.register(cert, 0)
		waitFor(t, func() bool { _, err := f.reg.Check(cert); return err == nil })
		cancel()
		<-done
	})
	t.Run("redis", func(t *testing.T) {
		addr := storagetest.Redis(t)
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		f := newFixture(t)
		f.refresh()
		ctx, cancel := context.WithCancel(f.ctx)
		defer cancel()
		go f.reg.Run(ctx, time.Hour, f.reg.Listen(ctx, rdb))
		cert := leaf(t, 201, "proxy-announced")
		f.register(cert, 0)
		// Listen returned after Redis confirmed the subscription, so one
		// announcement is enough.
		if err := Publish(f.ctx, rdb, clientca.SerialHex(cert.SerialNumber)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { _, err := f.reg.Check(cert); return err == nil })

		other := newFixture(t)
		other.refresh()
		sub := rdb.Subscribe(f.ctx, Channel)
		defer sub.Close()
		if _, err := sub.Receive(f.ctx); err != nil {
			t.Fatal(err)
		}
		mine := leaf(t, 202, "proxy-mine")
		other.register(mine, 0)
		if err := other.reg.Announce(f.ctx, clientca.SerialHex(mine.SerialNumber), rdb); err != nil {
			t.Fatal(err)
		}
		if _, err := other.reg.Check(mine); err != nil {
			t.Errorf("Announce did not apply the change locally: %v", err)
		}
		select {
		case msg := <-sub.Channel():
			if msg.Payload != clientca.SerialHex(mine.SerialNumber) {
				t.Errorf("announced %q", msg.Payload)
			}
		case <-time.After(5 * time.Second):
			t.Error("Announce told no other node")
		}
	})
	t.Run("failing refresh", func(t *testing.T) {
		f := newFixture(t)
		core, logs := observer.New(zapcore.WarnLevel)
		f.reg.logger = zap.New(core)
		f.reg.source = failingSource{}
		ctx, cancel := context.WithCancel(f.ctx)
		done := make(chan struct{})
		go func() { f.reg.Run(ctx, 5*time.Millisecond, nil); close(done) }()
		waitFor(t, func() bool { return logs.FilterMessageSnippet("refresh failed").Len() >= 2 })
		cancel()
		<-done
	})
}

// TestListenClosesTheGapsAnnouncementsCannotCover: Redis keeps no
// messages for a subscriber that is not connected, so a certificate
// registered after the first load but before the subscription, or while
// the subscription's connection is down, must be read when the
// subscription is (re)established — the poll here is hourly.
func TestListenClosesTheGapsAnnouncementsCannotCover(t *testing.T) {
	addr := storagetest.Redis(t)
	name := fmt.Sprintf("certregistry-test-%d", time.Now().UnixNano())
	rdb := redis.NewClient(&redis.Options{Addr: addr, ClientName: name})
	t.Cleanup(func() { rdb.Close() })
	f := newFixture(t)
	f.refresh()
	before := leaf(t, 301, "proxy-before-subscribe")
	f.register(before, 0)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	sub := f.reg.Listen(ctx, rdb)
	if _, err := f.reg.Check(before); err != nil {
		t.Fatalf("a certificate registered before the subscription was not read when Listen returned: %v", err)
	}
	go f.reg.Run(ctx, time.Hour, sub)

	// A certificate whose announcement is lost (registered without one,
	// as if while the connection was down) stays unknown: the poll is
	// hourly. Drop the subscriber's connection and let the client
	// reconnect: the resubscription refreshes and reads it. (Registering
	// it after the kill raced the reconnect: a resubscription that came
	// first read nothing new, and the test waited for the hourly poll.)
	missed := leaf(t, 302, "proxy-announcement-missed")
	f.register(missed, 0)
	if _, err := f.reg.Check(missed); !errors.Is(err, ErrUnknown) {
		t.Fatalf("a certificate nobody announced was read before any refresh: %v", err)
	}
	killSubscriber(t, rdb, name)
	waitFor(t, func() bool { _, err := f.reg.Check(missed); return err == nil })
}

// killSubscriber closes, on the server's side, the subscription
// connection of the client named name (and only it: other tests share the
// server).
func killSubscriber(t *testing.T, rdb *redis.Client, name string) {
	t.Helper()
	list, err := rdb.Do(context.Background(), "CLIENT", "LIST", "TYPE", "pubsub").Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(list, "\n") {
		if !strings.Contains(line, " name="+name+" ") {
			continue
		}
		id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
		if err := rdb.Do(context.Background(), "CLIENT", "KILL", "ID", id).Err(); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no subscription connection named %s in %q", name, list)
}

// TestListenWithoutRedisKeepsPolling: no Redis means no subscription; an
// unreachable one is logged and left to reconnect, and Start is not held
// up past subscribeWait.
func TestListenWithoutRedisKeepsPolling(t *testing.T) {
	f := newFixture(t)
	if sub := f.reg.Listen(f.ctx, nil); sub != nil {
		t.Errorf("Listen without Redis = %v, want nil", sub)
	}
	core, logs := observer.New(zapcore.WarnLevel)
	f.reg.logger = zap.New(core)
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { down.Close() })
	sub := f.reg.Listen(f.ctx, down)
	if sub == nil {
		t.Fatal("Listen over an unreachable Redis returned no subscription to retry")
	}
	sub.Close()
	if logs.FilterMessageSnippet("subscribing to client certificate announcements failed").Len() != 1 {
		t.Errorf("the failed subscription was not logged: %v", logs.All())
	}
}

func TestAnnounceAndPublishReportFailures(t *testing.T) {
	f := newFixture(t)
	if err := Publish(f.ctx, nil, "ab"); err != nil {
		t.Errorf("Publish without Redis = %v, want nil", err)
	}
	closed := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	closed.Close()
	if err := Publish(f.ctx, closed, "ab"); err == nil || !strings.Contains(err.Error(), "ab") {
		t.Errorf("Publish over a closed client = %v, want an error naming the serial", err)
	}
	f.refresh()
	cert := leaf(t, 210, "proxy-x")
	f.register(cert, 0)
	core, logs := observer.New(zapcore.WarnLevel)
	f.reg.logger = zap.New(core)
	if err := f.reg.Announce(f.ctx, clientca.SerialHex(cert.SerialNumber), closed); err != nil {
		t.Fatalf("Announce with Redis down = %v, want the local change applied and no error", err)
	}
	if _, err := f.reg.Check(cert); err != nil || logs.Len() != 1 {
		t.Errorf("Announce with Redis down: check %v, %d warnings", err, logs.Len())
	}
	f.reg.source = failingSource{Source: f.repo}
	if err := f.reg.Announce(f.ctx, "ab", nil); err == nil {
		t.Error("Announce with the database down = nil, want the error")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (failingSource) ChangedSince(context.Context, time.Time) ([]storage.Client, error) {
	return nil, errors.New("database down")
}
