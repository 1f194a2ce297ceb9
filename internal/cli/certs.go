package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/internal/clientca"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// certJSON is an issued certificate as --json prints it. The clients row
// keeps the certificate's NotBefore as issued_at, which the issuer
// backdates a minute for clocks slightly behind; the time of issuance is
// when the row was recorded.
type certJSON struct {
	ClientID          string     `json:"client_id"`
	Role              string     `json:"role"`
	SerialNumber      string     `json:"serial_number"`
	FingerprintSHA256 string     `json:"fingerprint_sha256"`
	Status            string     `json:"status"`
	Subject           string     `json:"subject"`
	IssuedAt          time.Time  `json:"issued_at"`
	NotBefore         time.Time  `json:"not_before"`
	NotAfter          time.Time  `json:"not_after"`
	RevokedAt         *time.Time `json:"revoked_at"`
	RevocationReason  *string    `json:"revocation_reason"`
	CreatedBy         string     `json:"created_by"`
}

// certStatusExpired is the status shown for an active certificate past
// its NotAfter; the table keeps "active", as handshakes refuse it anyway.
const certStatusExpired = "expired"

func certStatus(cl *storage.Client, now time.Time) string {
	if cl.Status == storage.ClientActive && !now.Before(cl.NotAfter) {
		return certStatusExpired
	}
	return cl.Status
}

func certOut(cl *storage.Client, now time.Time) certJSON {
	return certJSON{ClientID: cl.ClientID, Role: cl.Role, SerialNumber: cl.SerialNumber, FingerprintSHA256: cl.FingerprintSHA256,
		Status: certStatus(cl, now), Subject: cl.Subject, IssuedAt: cl.CreatedAt, NotBefore: cl.IssuedAt, NotAfter: cl.NotAfter,
		RevokedAt: cl.RevokedAt, RevocationReason: cl.RevocationReason, CreatedBy: cl.CreatedBy}
}

func (c *console) printCerts(certs []storage.Client) error {
	now := c.io.now()
	if c.jsonOut {
		return c.printJSON(jsonList(certs, func(cl *storage.Client) certJSON { return certOut(cl, now) }))
	}
	rows := make([][]string, 0, len(certs))
	for _, cl := range certs {
		revoked := "-"
		if cl.RevokedAt != nil {
			revoked = timeText(*cl.RevokedAt) + " " + strPtrText(cl.RevocationReason)
		}
		rows = append(rows, []string{cl.ClientID, cl.Role, cl.SerialNumber, certStatus(&cl, now),
			timeText(cl.CreatedAt), timeText(cl.NotAfter), revoked})
	}
	return c.table([]string{"CLIENT", "ROLE", "SERIAL", "STATUS", "ISSUED", "EXPIRES", "REVOKED"}, rows)
}

func certCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "cert", Short: "Manages client certificates of proxies and workers"})

	list := &cobra.Command{
		Use:   "list [--status active|revoked|expired] [--client ID]",
		Short: "Lists issued client certificates, newest first",
		Args:  nargs(0, 0),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdCertList),
	}
	list.Flags().String("status", "", "Only certificates with this status: active, revoked or expired")
	list.Flags().String("client", "", "Only certificates of this client id")

	issue := &cobra.Command{
		Use:   "issue CLIENT_ID --role proxy|worker [--days N] [--csr FILE] [--out DIR]",
		Short: "Issues a client certificate",
		Long: `Issues a client certificate with the same issuer as the admin API, signed by
the client-issuing intermediate below the pki CA named by the msgbroker
option's 'ca' (default local). Without --csr the key is generated here and
shown once.

With --out, the files are written to DIR (created with mode 0700):
  CLIENT_ID.crt        the certificate
  CLIENT_ID.chain.crt  the certificate and its intermediate: what the client presents
  CLIENT_ID.key        the private key, mode 0600 (not with --csr)
  ca.crt               the pki root that verifies the chain
Existing files are never overwritten. Without --out, the chain and the key
are printed as PEM.`,
		Example: `  caddy msgbroker cert issue proxy-1 --role proxy --out ./certs
  caddy msgbroker cert issue worker-1 --role worker --days 90 --csr worker-1.csr --out ./certs`,
		Args: nargs(1, 1),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdCertIssue),
	}
	f := issue.Flags()
	f.String("role", "", "Role carried by the certificate: proxy or worker (required)")
	f.Int("days", 0, "Days of validity (default 365)")
	f.String("csr", "", "PEM certificate signing request; only its public key is used")
	f.String("out", "", "Directory to write the certificate files to")

	revoke := &cobra.Command{
		Use:   "revoke CLIENT_ID|SERIAL --reason TEXT [--force]",
		Short: "Revokes a certificate, or every active certificate of a client",
		Long: `Revokes the certificate with the given serial number, or every active
certificate of the given client id. Running gateways refuse it at the next
handshake: at once with Redis, otherwise within their revocation poll
interval (default 1s).`,
		Example: `  caddy msgbroker cert revoke proxy-1 --reason "key compromised" --force`,
		Args:    nargs(1, 1),
		RunE:    caddycmd.WrapCommandFuncForCobra(cmdCertRevoke),
	}
	revoke.Flags().String("reason", "", "Why the certificate is revoked (required)")
	forceFlag(revoke)

	cmd.AddCommand(list, issue, revoke)
	return cmd
}

func cmdCertList(fl caddycmd.Flags) (int, error) {
	status, client := fl.String("status"), fl.String("client")
	stored := status
	switch status {
	case "", storage.ClientRevoked:
	case storage.ClientActive, certStatusExpired:
		stored = storage.ClientActive
	default:
		return exit(usagef("--status must be active, revoked or expired, not %q", status))
	}
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		certs, err := svc.Store.Clients.ListFilter(ctx, stored, client)
		if err != nil {
			return err
		}
		if status != "" {
			now := out.io.now()
			kept := certs[:0]
			for _, cl := range certs {
				if certStatus(&cl, now) == status {
					kept = append(kept, cl)
				}
			}
			certs = kept
		}
		return out.printCerts(certs)
	})
}

// maxCSRBytes bounds the CSR file read by cert issue.
const maxCSRBytes = 64 << 10

func cmdCertIssue(fl caddycmd.Flags) (int, error) {
	clientID, role, days, outDir := fl.Arg(0), fl.String("role"), fl.Int("days"), fl.String("out")
	if role != clientca.RoleProxy && role != clientca.RoleWorker {
		return exit(usagef("--role must be proxy or worker"))
	}
	if days < 0 {
		return exit(usagef("--days must be positive"))
	}
	var csr []byte
	if csrFile := fl.String("csr"); csrFile != "" {
		var err error
		if csr, err = readLimited(csrFile, maxCSRBytes); err != nil {
			return exit(err)
		}
	}
	files := issuedFiles(outDir, clientID, csr == nil)
	if err := refuseExisting(files); err != nil {
		return exit(err)
	}
	return withServices(fl, withKeys, func(ctx context.Context, out *console, svc *services) error {
		issued, row, err := svc.Certificates.Issue(ctx, actor(), broker.IssueRequest{ClientID: clientID, Role: role, Days: days, CSRPEM: csr})
		if err != nil {
			return err
		}
		if outDir != "" {
			if err := writeIssued(outDir, files, issued); err != nil {
				return fmt.Errorf("certificate %s was issued and recorded, but writing it failed: %w", row.SerialNumber, err)
			}
		}
		return out.printIssued(issued, row, outDir, files)
	})
}

// issuedFile is one file cert issue writes.
type issuedFile struct {
	path string
	mode fs.FileMode
	data func(*clientca.Issued) []byte
}

func issuedFiles(dir, clientID string, withKey bool) []issuedFile {
	if dir == "" {
		return nil
	}
	files := []issuedFile{
		{filepath.Join(dir, clientID+".crt"), 0o644, func(i *clientca.Issued) []byte { return i.CertificatePEM }},
		{filepath.Join(dir, clientID+".chain.crt"), 0o644, func(i *clientca.Issued) []byte { return i.ChainPEM }},
		{filepath.Join(dir, "ca.crt"), 0o644, func(i *clientca.Issued) []byte { return i.CAPEM }},
	}
	if withKey {
		files = append(files, issuedFile{filepath.Join(dir, clientID+".key"), 0o600, func(i *clientca.Issued) []byte { return i.PrivateKeyPEM }})
	}
	return files
}

// refuseExisting fails before anything is issued if a file would be
// overwritten. ca.crt is the exception: it is the same root every time.
func refuseExisting(files []issuedFile) error {
	for _, f := range files {
		if filepath.Base(f.path) == "ca.crt" {
			continue
		}
		if _, err := os.Lstat(f.path); err == nil {
			return fmt.Errorf("%s already exists; remove it or choose another --out", f.path)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

func writeIssued(dir string, files []issuedFile, issued *clientca.Issued) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range files {
		flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
		if filepath.Base(f.path) == "ca.crt" {
			flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		}
		if err := writeFile(f.path, flags, f.mode, f.data(issued)); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, flags int, mode fs.FileMode, data []byte) error {
	fh, err := os.OpenFile(path, flags, mode)
	if err != nil {
		return err
	}
	// Set the mode outright: the umask must not loosen or tighten it.
	err = fh.Chmod(mode)
	if err == nil {
		_, err = fh.Write(data)
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c *console) printIssued(issued *clientca.Issued, row *storage.Client, outDir string, files []issuedFile) error {
	if c.jsonOut {
		out := struct {
			certJSON
			CertificatePEM string   `json:"certificate_pem"`
			ChainPEM       string   `json:"chain_pem"`
			CAPEM          string   `json:"ca_pem"`
			PrivateKeyPEM  string   `json:"private_key_pem,omitempty"`
			Files          []string `json:"files,omitempty"`
		}{certJSON: certOut(row, c.io.now()), CertificatePEM: string(issued.CertificatePEM),
			ChainPEM: string(issued.ChainPEM), CAPEM: string(issued.CAPEM)}
		if outDir == "" {
			out.PrivateKeyPEM = string(issued.PrivateKeyPEM)
		}
		for _, f := range files {
			out.Files = append(out.Files, f.path)
		}
		return c.printJSON(out)
	}
	fmt.Fprintf(c.io.err, "Issued certificate %s for %s (%s), valid until %s.\n",
		row.SerialNumber, row.ClientID, row.Role, timeText(row.NotAfter))
	if outDir == "" {
		_, err := c.io.out.Write(append(append([]byte{}, issued.ChainPEM...), issued.PrivateKeyPEM...))
		return err
	}
	for _, f := range files {
		c.printf("%s\n", f.path)
	}
	return nil
}

func cmdCertRevoke(fl caddycmd.Flags) (int, error) {
	target, reason := fl.Arg(0), fl.String("reason")
	if strings.TrimSpace(reason) == "" {
		return exit(usagef("--reason is required"))
	}
	return withServices(fl, withKeys, func(ctx context.Context, out *console, svc *services) error {
		if preview := previewRevocation(ctx, svc.Store, target); len(preview) > 0 {
			if err := out.confirm(fl.Bool("force"), fmt.Sprintf("Revoke %s?", strings.Join(preview, ", "))); err != nil {
				return err
			}
		}
		revoked, err := svc.Certificates.Revoke(ctx, actor(), target, reason)
		if err != nil {
			return err
		}
		if out.jsonOut {
			return out.printCerts(revoked)
		}
		for _, cl := range revoked {
			out.printf("Revoked certificate %s of %s (%s).\n", cl.SerialNumber, cl.ClientID, cl.Role)
		}
		return nil
	})
}

// previewRevocation describes the active certificates target names, for
// the confirmation; the revocation itself decides again.
func previewRevocation(ctx context.Context, store *storage.Store, target string) []string {
	if cl, err := store.Clients.GetBySerial(ctx, strings.ToLower(strings.ReplaceAll(target, ":", ""))); err == nil {
		if cl.Status != storage.ClientActive {
			return nil
		}
		return []string{fmt.Sprintf("certificate %s of %s", cl.SerialNumber, cl.ClientID)}
	}
	active, err := store.Clients.ListFilter(ctx, storage.ClientActive, target)
	if err != nil {
		return nil
	}
	var out []string
	for _, cl := range active {
		out = append(out, fmt.Sprintf("certificate %s of %s", cl.SerialNumber, cl.ClientID))
	}
	return out
}

// readLimited reads a file of at most limit bytes.
func readLimited(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}
