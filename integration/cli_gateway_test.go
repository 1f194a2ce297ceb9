package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// cliGateway is `caddy run` of the built binary on the environment's
// Caddyfile, in the background.
type cliGateway struct {
	e    *cliEnv
	port int // of the mTLS listener
	root *x509.Certificate
}

// startGateway runs the gateway until the test ends and waits until its
// mTLS listener presents a certificate. The pki app creates the local CA
// on this first start, as for an operator.
func (e *cliEnv) startGateway() *cliGateway {
	e.t.Helper()
	rootPath := filepath.Join(e.dir, "caddy", "pki", "authorities", "local", "root.crt")
	return e.startNode("gateway", e.caddyfile, e.mtlsPort, e.env, func() []byte {
		data, _ := os.ReadFile(rootPath)
		return data
	})
}

// startNode runs `caddy run` of the built binary on caddyfile with env
// until the test ends, logging to <name>.log, and waits until the CA root
// (read by root, nil until it exists) is there and the mTLS listener on
// mtlsPort presents a certificate.
func (e *cliEnv) startNode(name, caddyfile string, mtlsPort int, env []string, root func() []byte) *cliGateway {
	e.t.Helper()
	logFile, err := os.Create(filepath.Join(e.dir, name+".log"))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(cliBinary(e.t), "run", "--config", caddyfile)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = e.dir, env, logFile, logFile
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	// exited is closed when the gateway has exited, waitErr then says
	// how: closed rather than sent on, so that both the start-up loop and
	// the cleanup see it (a gateway that failed to start hung the cleanup).
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
	})

	g := &cliGateway{e: e, port: mtlsPort}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile.Name())
			e.t.Fatalf("the %s exited: %v\n%s", name, waitErr, log)
		default:
		}
		if g.root == nil {
			if data := root(); data != nil {
				g.root = cliParseCert(e.t, data)
			}
		}
		if g.root != nil {
			conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", mtlsPort), g.tlsConfig(nil))
			if err == nil {
				conn.Close()
				return g
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile.Name())
			e.t.Fatalf("the %s did not come up:\n%s", name, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *cliGateway) tlsConfig(cert *tls.Certificate) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(g.root)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// register posts a message with a fresh connection, so every call is a
// new handshake, and returns the message id or the error.
func (g *cliGateway) register(cert *tls.Certificate, body string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: g.tlsConfig(cert)}}
	defer client.CloseIdleConnections()
	id := uuid.NewString()
	payload, _ := json.Marshal(map[string]string{"message_id": id, "sender_number": "+4915200000000", "message_body": body})
	resp, err := client.Post(fmt.Sprintf("https://localhost:%d/internal/messages/register", g.port), "application/json", bytes.NewReader(payload))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("register: %d %s", resp.StatusCode, answer)
	}
	return id, nil
}

func cliParseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// cliVerifyChain verifies a chain file (leaf first) against root alone,
// for client authentication, as the mTLS listener does.
func cliVerifyChain(t *testing.T, chainPEM []byte, root *x509.Certificate) *x509.Certificate {
	t.Helper()
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	if len(certs) != 2 {
		t.Fatalf("the chain has %d certificates, want the leaf and its intermediate", len(certs))
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(certs[1])
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("the issued chain does not verify against the CA root: %v", err)
	}
	return certs[0]
}

func cliFileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

func TestCLICertificatesMessagesAndKeysWithARunningGateway(t *testing.T) {
	cliEachDialect(t, func(t *testing.T, e *cliEnv) {
		e.migrated()
		g := e.startGateway()
		ctx := context.Background()
		certDir := filepath.Join(e.dir, "certs")

		// cert issue --out: the files, their modes, the chain, the row.
		res := e.ok("", "cert", "issue", "proxy-1", "--role", "proxy", "--out", certDir)
		wantFiles := []string{"proxy-1.crt", "proxy-1.chain.crt", "ca.crt", "proxy-1.key"}
		var listed []string
		for _, f := range wantFiles {
			listed = append(listed, filepath.Join(certDir, f))
		}
		if res.stdout != strings.Join(listed, "\n")+"\n" || !strings.Contains(res.stderr, "Issued certificate ") {
			t.Fatalf("cert issue: %s", res)
		}
		for f, mode := range map[string]os.FileMode{"proxy-1.key": 0o600, "proxy-1.crt": 0o644, "proxy-1.chain.crt": 0o644, "ca.crt": 0o644} {
			if got := cliFileMode(t, filepath.Join(certDir, f)); got != mode {
				t.Errorf("%s has mode %04o, want %04o", f, got, mode)
			}
		}
		if got := cliFileMode(t, certDir); got != 0o700 {
			t.Errorf("the --out directory has mode %04o, want 0700", got)
		}
		chain, err := os.ReadFile(filepath.Join(certDir, "proxy-1.chain.crt"))
		if err != nil {
			t.Fatal(err)
		}
		leaf := cliVerifyChain(t, chain, g.root)
		caPEM, _ := os.ReadFile(filepath.Join(certDir, "ca.crt"))
		if !cliParseCert(t, caPEM).Equal(g.root) || leaf.Subject.CommonName != "proxy-1" {
			t.Fatalf("ca.crt is not the CA root, or the leaf is for %q", leaf.Subject.CommonName)
		}
		// The CLI made the client-issuing intermediate, named after the pki CA as the gateway names it.
		if !strings.HasPrefix(leaf.Issuer.CommonName, "CLI test CA Client Issuing CA ") {
			t.Fatalf("the leaf's issuer is %q", leaf.Issuer.CommonName)
		}
		serial := leaf.SerialNumber.Text(16)
		row, err := e.db().Clients.GetBySerial(ctx, serial)
		if err != nil || row.ClientID != "proxy-1" || row.Role != storage.ClientRoleProxy || row.Status != storage.ClientActive || row.CreatedBy != "cli" {
			t.Fatalf("clients row of %s: %+v, %v", serial, row, err)
		}
		if a := e.lastAudit("certificate.issue"); a.Actor != "cli" || a.Outcome != storage.AuditSuccess || !strings.Contains(a.Target, serial) {
			t.Fatalf("audit entry: %+v", a)
		}
		proxyCert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "proxy-1.chain.crt"), filepath.Join(certDir, "proxy-1.key"))
		if err != nil {
			t.Fatal(err)
		}

		// Nothing is issued when a file would be overwritten.
		e.fails(1, "already exists; remove it or choose another --out", "", "cert", "issue", "proxy-1", "--role", "proxy", "--out", certDir)
		if rows, _ := e.db().Clients.ListFilter(ctx, "", "proxy-1"); len(rows) != 1 {
			t.Fatalf("%d certificates of proxy-1 after a refused issue, want 1", len(rows))
		}

		// From a CSR: no key file, the CSR's key in the certificate.
		csrKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored"}}, csrKey)
		if err != nil {
			t.Fatal(err)
		}
		csrFile := filepath.Join(e.dir, "worker.csr")
		if err := os.WriteFile(csrFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), 0o600); err != nil {
			t.Fatal(err)
		}
		e.ok("", "cert", "issue", "worker-1", "--role", "worker", "--days", "30", "--csr", csrFile, "--out", certDir)
		if _, err := os.Stat(filepath.Join(certDir, "worker-1.key")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a key file was written for a CSR: %v", err)
		}
		workerPEM, _ := os.ReadFile(filepath.Join(certDir, "worker-1.chain.crt"))
		worker := cliVerifyChain(t, workerPEM, g.root)
		if !csrKey.PublicKey.Equal(worker.PublicKey) || worker.Subject.CommonName != "worker-1" {
			t.Fatal("the worker certificate does not carry the CSR's key and the client id")
		}
		if d := time.Until(worker.NotAfter); d < 29*24*time.Hour || d > 31*24*time.Hour {
			t.Fatalf("--days 30 gave a certificate valid for %s", d)
		}

		// Without --out, PEM on stdout for a pipe.
		res = e.ok("", "cert", "issue", "proxy-2", "--role", "proxy")
		if strings.Count(res.stdout, "-----BEGIN CERTIFICATE-----") != 2 || strings.Count(res.stdout, "-----BEGIN PRIVATE KEY-----") != 1 {
			t.Fatalf("cert issue without --out: %s", res)
		}

		res = e.ok("", "cert", "list")
		lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 4 || !cliMatch(`^CLIENT\s+ROLE\s+SERIAL\s+STATUS\s+ISSUED\s+EXPIRES\s+REVOKED$`, lines[0]) ||
			!cliMatch(`^proxy-1\s+proxy\s+`+serial+`\s+active\s+20`, lines[3]) {
			t.Fatalf("cert list:\n%s", res.stdout)
		}
		var workers []struct{ ClientID, Role, Status string }
		e.json(&workers, "cert", "list", "--client", "worker-1", "--status", "active")
		if len(workers) != 1 || workers[0].Role != "worker" || workers[0].Status != "active" {
			t.Fatalf("cert list --client worker-1 --json: %+v", workers)
		}

		// Messages registered through the gateway with the issued certificate.
		bodies := map[string]string{}
		for i := range 5 {
			body := fmt.Sprintf("secret body %d", i)
			id, err := g.register(&proxyCert, body)
			if err != nil {
				t.Fatalf("registering with the CLI-issued certificate: %v", err)
			}
			bodies[id] = body
		}
		res = e.ok("", "message", "list")
		lines = strings.Split(strings.TrimSpace(res.stdout), "\n")
		if len(lines) != 6 || !cliMatch(`^MESSAGE ID\s+CLIENT\s+SENDER\s+STATUS\s+ATTEMPTS\s+CREATED$`, lines[0]) ||
			!cliMatch(`^[0-9a-f-]{36}\s+proxy-1\s+\+4915\*\*\*\*0000\s+queued\s+0\s+20`, lines[1]) || strings.Contains(res.stdout, "secret body") {
			t.Fatalf("message list:\n%s", res.stdout)
		}
		res = e.ok("", "message", "list", "--limit", "2", "--since", "1h", "--status", "queued", "--client", "proxy-1")
		if n := len(strings.Split(strings.TrimSpace(res.stdout), "\n")); n != 3 || !strings.Contains(res.stderr, "the newest 2") {
			t.Fatalf("message list --limit 2: %s", res)
		}
		var none []any
		e.json(&none, "message", "list", "--status", "delivered")
		if len(none) != 0 {
			t.Fatalf("message list --status delivered: %v", none)
		}

		var someID string
		for id := range bodies {
			someID = id
			break
		}
		res = e.ok("", "message", "view", someID)
		if !cliMatch(`(?m)^Body:\s+\(encrypted; --decrypt`, res.stdout) || strings.Contains(res.stdout, "secret body") {
			t.Fatalf("message view: %s", res)
		}
		if entries, _ := e.db().Audit.List(ctx, storage.AuditFilter{Action: "message.decrypt"}); len(entries) != 0 {
			t.Fatalf("a view without --decrypt was audited as a decryption: %+v", entries)
		}
		res = e.ok("", "message", "view", someID, "--decrypt")
		if !cliMatch(`(?m)^Body:\s+`+bodies[someID]+`$`, res.stdout) || !cliMatch(`(?m)^Client:\s+proxy-1$`, res.stdout) {
			t.Fatalf("message view --decrypt: %s", res)
		}
		if a := e.lastAudit("message.decrypt"); a.Actor != "cli" || a.Target != someID || a.Outcome != storage.AuditSuccess {
			t.Fatalf("audit entry of the decryption: %+v", a)
		}
		e.fails(1, "no message with id", "", "message", "view", uuid.NewString(), "--decrypt")

		// keys rotate, stopped after two batches, with the gateway reloaded.
		oldKey := cliKeyring(t, e).PrimaryID()
		res = e.ok("", "keys", "rotate", "--batch-size", "1", "--max-batches", "2", "--reload")
		newKey := cliKeyring(t, e).PrimaryID()
		if newKey == oldKey || !strings.Contains(res.stderr, "Added key "+newKey) || !strings.Contains(res.stderr, fmt.Sprintf("Reloaded the running gateway at 127.0.0.1:%d.", e.adminPort)) ||
			res.stdout != "Re-encrypted 2 bodies with key "+newKey+".\n3 bodies remain under older keys; run 'caddy msgbroker keys rotate' again to continue.\n" {
			t.Fatalf("keys rotate --max-batches 2: %s", res)
		}
		if got := cliCountByKey(t, e, oldKey, newKey); got != [2]int64{3, 2} {
			t.Fatalf("bodies under old and new key after two batches: %v", got)
		}
		// The reloaded gateway encrypts with the new key.
		id, err := g.register(&proxyCert, "after the rotation")
		if err != nil {
			t.Fatal(err)
		}
		bodies[id] = "after the rotation"
		if m, err := e.db().Messages.GetByMessageID(ctx, id); err != nil || m.EncryptionKeyID != newKey {
			t.Fatalf("a message registered after the reload is under %v (%v), want %s", m, err, newKey)
		}
		e.fails(1, "3 message bodies are still encrypted with key "+oldKey, "", "keys", "retire", oldKey, "--force")

		res = e.ok("", "keys", "rotate")
		if !strings.Contains(res.stderr, "Resuming: 3 bodies are still under older keys") || !strings.HasPrefix(res.stdout, "Re-encrypted 3 bodies with key "+newKey+".\n") {
			t.Fatalf("resumed keys rotate: %s", res)
		}
		if cliKeyring(t, e).PrimaryID() != newKey {
			t.Fatal("resuming added another key")
		}
		cliCheckBodies(t, e, bodies, newKey)
		var usage struct {
			Keys []struct {
				ID       string
				Primary  bool
				Messages int64
			}
		}
		e.json(&usage, "keys", "list")
		if len(usage.Keys) != 2 || usage.Keys[0].ID != oldKey || usage.Keys[0].Messages != 0 || !usage.Keys[1].Primary || usage.Keys[1].Messages != 6 {
			t.Fatalf("keys list --json: %+v", usage)
		}

		e.fails(1, "is the primary key", "", "keys", "retire", newKey, "--force")
		e.fails(2, "refusing to proceed without confirmation", "", "keys", "retire", oldKey)
		if res := e.ok("", "keys", "retire", oldKey, "--force"); res.stdout != "Retired key "+oldKey+".\n" {
			t.Fatalf("keys retire: %s", res)
		}
		if ids := cliKeyring(t, e).IDs(); len(ids) != 1 || ids[0] != newKey {
			t.Fatalf("keys in the file after retiring: %v", ids)
		}
		if a := e.lastAudit("keys.retire"); a.Actor != "cli" || a.Target != oldKey || a.Outcome != storage.AuditSuccess {
			t.Fatalf("audit entry: %+v", a)
		}
		cliCheckBodies(t, e, bodies, newKey)

		// cert revoke: confirmation, the row, and the next handshake refused.
		e.fails(2, "refusing to proceed without confirmation", "y\n", "cert", "revoke", "proxy-1", "--reason", "lost")
		if row, _ := e.db().Clients.GetBySerial(ctx, serial); row.Status != storage.ClientActive {
			t.Fatal("revoked without confirmation")
		}
		res = e.ok("", "cert", "revoke", "proxy-1", "--reason", "laptop stolen", "--force")
		if res.stdout != "Revoked certificate "+serial+" of proxy-1 (proxy).\n" {
			t.Fatalf("cert revoke: %s", res)
		}
		row, err = e.db().Clients.GetBySerial(ctx, serial)
		if err != nil || row.Status != storage.ClientRevoked || row.RevocationReason == nil || *row.RevocationReason != "laptop stolen" {
			t.Fatalf("clients row after revoke: %+v, %v", row, err)
		}
		if a := e.lastAudit("certificate.revoke"); a.Actor != "cli" || a.Target != "proxy-1" || a.Outcome != storage.AuditSuccess {
			t.Fatalf("audit entry: %+v", a)
		}
		revokedAt := time.Now()
		deadline := revokedAt.Add(5 * time.Second)
		for {
			if _, err := g.register(&proxyCert, "after revocation"); err != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the running gateway still accepts the revoked certificate after 5s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("the gateway refused the revoked certificate %s after the CLI returned", time.Since(revokedAt).Round(time.Millisecond))
		e.fails(1, "proxy-1 has no active certificate", "", "cert", "revoke", "proxy-1", "--reason", "again", "--force")
		var revoked []struct {
			SerialNumber string `json:"serial_number"`
			Status       string
		}
		e.json(&revoked, "cert", "list", "--status", "revoked")
		if len(revoked) != 1 || revoked[0].SerialNumber != serial {
			t.Fatalf("cert list --status revoked: %+v", revoked)
		}
		// Registrations may have got through until the revocation arrived.
		total, err := e.db().Messages.Total(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res = e.ok("", "stats")
		if !strings.Contains(res.stdout, "Clients:\n  Total: 3\n  Active: 2\n  Revoked: 1\n  Expired: 0\n") ||
			!strings.Contains(res.stdout, fmt.Sprintf("Messages:\n  Total: %d\n  Queued: %d\n", total, total)) {
			t.Fatalf("stats:\n%s", res.stdout)
		}
	})
}

func cliKeyring(t *testing.T, e *cliEnv) *keyring.Keyring {
	t.Helper()
	kr, err := keyring.Load(e.keyringPath())
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func cliCountByKey(t *testing.T, e *cliEnv, ids ...string) [2]int64 {
	t.Helper()
	var out [2]int64
	for i, id := range ids {
		n, err := e.db().Messages.CountByKeyID(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = n
	}
	return out
}

// cliCheckBodies checks that every message is under key and decrypts,
// with the keyring file as it is now, to the body it was registered with.
func cliCheckBodies(t *testing.T, e *cliEnv, bodies map[string]string, key string) {
	t.Helper()
	kr := cliKeyring(t, e)
	msgs, err := e.db().Messages.List(context.Background(), storage.MessageFilter{Limit: storage.MaxPageSize})
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(bodies) {
		t.Fatalf("%d messages, want %d", len(msgs), len(bodies))
	}
	for _, m := range msgs {
		plain, err := kr.Decrypt(m.BodyEncrypted, []byte(m.MessageID))
		if err != nil || string(plain) != bodies[m.MessageID] || m.EncryptionKeyID != key {
			t.Fatalf("message %s under %s: decrypts to %q (%v), want %q under %s", m.MessageID, m.EncryptionKeyID, plain, err, bodies[m.MessageID], key)
		}
	}
}

func TestCLIKeysRotateResumesAfterBeingKilled(t *testing.T) {
	cliEachDialect(t, func(t *testing.T, e *cliEnv) {
		e.migrated()
		ctx := context.Background()
		kr := cliKeyring(t, e)
		oldKey := kr.PrimaryID()
		const n = 2000
		bodies := make(map[string]string, n)
		msgs := make([]storage.Message, 0, n)
		for i := range n {
			id := uuid.NewString()
			bodies[id] = fmt.Sprintf("body %d", i)
			env, err := kr.Encrypt([]byte(bodies[id]), []byte(id))
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, storage.Message{MessageID: id, ClientID: "proxy-1", SenderNumberHash: fmt.Sprintf("%064d", i),
				SenderNumberMasked: "+4915****0000", BodyEncrypted: env, EncryptionKeyID: oldKey, PayloadHash: fmt.Sprintf("%064d", i),
				Status: storage.MessageQueued})
		}
		for chunk := range slices.Chunk(msgs, 500) {
			if _, err := e.db().DB.NewInsert().Model(&chunk).Exec(ctx); err != nil {
				t.Fatal(err)
			}
		}

		// Kill the rotation once it reports progress: after at least a
		// tenth of the bodies, long before the last.
		cmd := exec.Command(cliBinary(t), "msgbroker", "keys", "rotate", "--batch-size", "1", "--config", e.caddyfile)
		cmd.Dir, cmd.Env = e.dir, e.env
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(stderr)
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), "re-encrypting: ") {
				break
			}
		}
		_ = cmd.Process.Kill()
		go io.Copy(io.Discard, stderr)
		if err := cmd.Wait(); err == nil {
			t.Fatal("the rotation finished before it was killed; the test needs more rows")
		}

		newKey := cliKeyring(t, e).PrimaryID()
		done := cliCountByKey(t, e, oldKey, newKey)
		if newKey == oldKey || done[1] < n/10 || done[0] == 0 || done[0]+done[1] != n {
			t.Fatalf("after the kill: %d under the old key, %d under the new one", done[0], done[1])
		}
		// Every body is readable mid-rotation.
		cliCheckMixed(t, e, bodies)

		res := e.ok("", "keys", "rotate", "--batch-size", "250")
		if !strings.Contains(res.stderr, fmt.Sprintf("Resuming: %s bodies", cliCount(done[0]))) ||
			!strings.HasPrefix(res.stdout, fmt.Sprintf("Re-encrypted %s bodies with key %s.\n", cliCount(done[0]), newKey)) {
			t.Fatalf("resumed rotation: %s", res)
		}
		if got := cliCountByKey(t, e, oldKey, newKey); got != [2]int64{0, n} {
			t.Fatalf("after resuming: %v", got)
		}
		cliCheckMixed(t, e, bodies)

		// With nothing left to resume, the next run is a new rotation: it
		// adds a key and moves every body to it.
		res = e.ok("", "keys", "rotate", "--batch-size", "1000")
		third := cliKeyring(t, e).PrimaryID()
		if third == newKey || !strings.HasPrefix(res.stdout, fmt.Sprintf("Re-encrypted 2,000 bodies with key %s.\n", third)) {
			t.Fatalf("a rotation after a finished one: %s", res)
		}
		cliCheckMixed(t, e, bodies)
	})
}

// cliCheckMixed checks that every body decrypts with the keyring file,
// whichever key seals it, and that the row names that key.
func cliCheckMixed(t *testing.T, e *cliEnv, bodies map[string]string) {
	t.Helper()
	kr := cliKeyring(t, e)
	var after storage.ListPosition
	seen := 0
	for {
		msgs, err := e.db().Messages.List(context.Background(), storage.MessageFilter{After: after, Limit: storage.MaxPageSize})
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			plain, err := kr.Decrypt(m.BodyEncrypted, []byte(m.MessageID))
			envKey, _ := keyring.KeyID(m.BodyEncrypted)
			if err != nil || string(plain) != bodies[m.MessageID] || envKey != m.EncryptionKeyID {
				t.Fatalf("message %s (column key %s, envelope key %s): %q, %v", m.MessageID, m.EncryptionKeyID, envKey, plain, err)
			}
			seen++
		}
		after = storage.PositionOf(&msgs[len(msgs)-1])
	}
	if seen != len(bodies) {
		t.Fatalf("checked %d messages, want %d", seen, len(bodies))
	}
}

// cliCount formats n as the CLI does, with thousands separators.
func cliCount(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
