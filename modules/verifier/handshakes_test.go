package verifier

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/time/rate"

	"github.com/msgbroker/caddy-msgbroker/internal/certregistry"
)

// TestClassifyNamesEachRefusal feeds classify the errors crypto/tls and the
// verifier return; the integration test checks crypto/tls really returns
// them.
func TestClassifyNamesEachRefusal(t *testing.T) {
	leaf := testLeaf(t, 7, "proxy-c")
	chainErr := func(err error) error {
		return fmt.Errorf("handshake: %w", &tls.CertificateVerificationError{UnverifiedCertificates: []*x509.Certificate{leaf}, Err: err})
	}
	cases := map[string]struct {
		err      error
		reason   string
		wantLeaf bool
	}{
		"unknown CA":        {chainErr(x509.UnknownAuthorityError{Cert: leaf}), ReasonUnknownCA, true},
		"expired chain":     {chainErr(x509.CertificateInvalidError{Cert: leaf, Reason: x509.Expired}), ReasonExpired, true},
		"wrong key usage":   {chainErr(x509.CertificateInvalidError{Cert: leaf, Reason: x509.IncompatibleUsage}), ReasonBadCertificate, true},
		"no certificate":    {errors.New("tls: client didn't provide a certificate"), ReasonNoCertificate, false},
		"verifier refusal":  {&Refusal{Reason: ReasonRevoked, Leaf: leaf, Err: certregistry.ErrRevoked}, ReasonRevoked, true},
		"client gave up":    {errors.New("EOF"), "", false},
		"no shared version": {errors.New("tls: client offered only unsupported versions"), "", false},
	}
	for name, tc := range cases {
		reason, got := classify(tc.err)
		if reason != tc.reason || (got == leaf) != tc.wantLeaf {
			t.Errorf("%s: classify = %q, leaf %t; want %q, leaf %t", name, reason, got == leaf, tc.reason, tc.wantLeaf)
		}
	}
	if reason, got := classify(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}); reason != ReasonUnknownCA || got != nil {
		t.Errorf("a verification error without certificates: %q, %v", reason, got)
	}
}

func newTestLog(limiter *rate.Limiter) (*HandshakeLog, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return &HandshakeLog{
		logger:     zap.New(core),
		refusals:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "refusals"}, []string{"reason"}),
		lines:      limiter,
		suppressed: new(atomic.Int64),
	}, logs
}

var peer = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 41000}

// TestRefusalIsLoggedOnceWithItsCertificateAndCounted checks what the log
// line says and that a handshake failure that is no refusal is ignored.
func TestRefusalIsLoggedOnceWithItsCertificateAndCounted(t *testing.T) {
	h, logs := newTestLog(rate.NewLimiter(rate.Inf, 1))
	leaf := testLeaf(t, 0x1f, "proxy-r")
	h.observe(&Refusal{Reason: ReasonRevoked, Leaf: leaf, Err: certregistry.ErrRevoked}, peer)
	h.observe(errors.New("tls: client didn't provide a certificate"), peer)
	h.observe(errors.New("EOF"), peer)
	if logs.Len() != 2 {
		t.Fatalf("%d log lines, want 2: %v", logs.Len(), logs.All())
	}
	first := logs.All()[0].ContextMap()
	want := map[string]any{"reason": ReasonRevoked, "client_id": "proxy-r", "serial": "1f", "remote_addr": "192.0.2.7:41000"}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, first[k], v, first)
		}
	}
	if logs.All()[0].Level != zapcore.WarnLevel {
		t.Errorf("level %s, want warn", logs.All()[0].Level)
	}
	second := logs.All()[1].ContextMap()
	if second["reason"] != ReasonNoCertificate || second["client_id"] != nil {
		t.Errorf("no-certificate line = %v", second)
	}
	for reason, want := range map[string]float64{ReasonRevoked: 1, ReasonNoCertificate: 1, "": 0} {
		if got := testutil.ToFloat64(h.refusals.WithLabelValues(reason)); got != want {
			t.Errorf("refusals{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// TestRefusalFloodIsCountedButNotAllLogged: past the line budget refusals
// are counted only, and the next line says how many went unlogged.
func TestRefusalFloodIsCountedButNotAllLogged(t *testing.T) {
	limiter := rate.NewLimiter(0, 2)
	h, logs := newTestLog(limiter)
	flood := errors.New("tls: client didn't provide a certificate")
	for range 50 {
		h.observe(flood, peer)
	}
	if logs.Len() != 2 {
		t.Fatalf("a flood of 50 refusals wrote %d lines, want the burst of 2", logs.Len())
	}
	if got := testutil.ToFloat64(h.refusals.WithLabelValues(ReasonNoCertificate)); got != 50 {
		t.Errorf("counted %v refusals, want 50", got)
	}
	limiter.SetLimit(rate.Inf)
	h.observe(flood, peer)
	h.observe(flood, peer)
	lines := logs.All()
	if got := lines[2].ContextMap()["unlogged_before"]; got != int64(48) {
		t.Errorf("the line after the flood says unlogged_before=%v, want 48", got)
	}
	if _, ok := lines[3].ContextMap()["unlogged_before"]; ok {
		t.Error("the count of unlogged refusals was reported twice")
	}
}

// TestListenerWatchesRealHandshakes puts the wrapper on a real TLS
// listener: a client without a certificate is refused by crypto/tls, the
// server's own handshake and the wrapper's watch see the same refusal,
// and it is logged once; a plain TCP listener's connections pass as they
// are.
func TestListenerWatchesRealHandshakes(t *testing.T) {
	h, logs := newTestLog(rate.NewLimiter(rate.Inf, 1))
	serverCert := testServerCertificate(t)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ln := h.WrapListener(tls.NewListener(raw, &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    x509.NewCertPool(),
	}))
	serverErr := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer conn.Close()
		serverErr <- conn.(*tls.Conn).Handshake() // as the HTTP server does
	}()
	conn, err := tls.Dial("tcp", raw.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err == nil {
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("the handshake without a certificate succeeded")
	}
	if err := <-serverErr; err == nil {
		t.Fatal("the server's handshake succeeded")
	}
	deadline := time.Now().Add(5 * time.Second)
	for logs.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if logs.Len() != 1 || logs.All()[0].ContextMap()["reason"] != ReasonNoCertificate {
		t.Fatalf("logged %v, want one no_certificate line", logs.All())
	}

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		if c, err := net.Dial("tcp", plain.Addr().String()); err == nil {
			c.Close()
		}
	}()
	c, err := h.WrapListener(plain).Accept()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, ok := c.(*net.TCPConn); !ok {
		t.Errorf("a plain connection came out as %T", c)
	}
}

func testServerCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestCaddyfileTakesNoOptions(t *testing.T) {
	for input, wantErr := range map[string]bool{
		"msgbroker_handshakes":           false,
		"msgbroker_handshakes extra":     true,
		"msgbroker_handshakes {\n\tx\n}": true,
		"msgbroker":                      false,
		"msgbroker {\n\tpoll 1s\n}":      true,
	} {
		var err error
		d := caddyfile.NewTestDispenser(input)
		if strings.HasPrefix(input, "msgbroker_handshakes") {
			err = new(HandshakeLog).UnmarshalCaddyfile(d)
		} else {
			err = new(Verifier).UnmarshalCaddyfile(d)
		}
		if (err != nil) != wantErr {
			t.Errorf("%q: %v, want error %t", input, err, wantErr)
		}
	}
}
