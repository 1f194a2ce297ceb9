// Package mtls builds the HTTP client the example proxy and worker use: it
// presents a client certificate issued by the broker's CA and trusts the
// broker's server certificate. By default it reads the files
// `caddy msgbroker cert issue CLIENT_ID --out ./certs` writes:
// certs/CLIENT_ID.chain.crt, certs/CLIENT_ID.key and certs/ca.crt (the pki
// root, which also signs the gateway's server certificate).
package mtls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Flags are the connection settings both examples share.
type Flags struct {
	URL, Dir, ClientID, Cert, Key, CA string
}

// Register adds the shared flags to the default flag set; clientID is the
// default of -client.
func Register(clientID string) *Flags {
	f := &Flags{}
	flag.StringVar(&f.URL, "url", "https://localhost:8443", "base URL of the broker's internal API")
	flag.StringVar(&f.Dir, "certs", "certs", "directory `caddy msgbroker cert issue --out` wrote")
	flag.StringVar(&f.ClientID, "client", clientID, "client id: reads CERTS/CLIENT.chain.crt and CERTS/CLIENT.key")
	flag.StringVar(&f.Cert, "cert", "", "client certificate, PEM (default CERTS/CLIENT.chain.crt)")
	flag.StringVar(&f.Key, "key", "", "client private key, PEM (default CERTS/CLIENT.key)")
	flag.StringVar(&f.CA, "ca", "", "CA root that signs the broker's server certificate, PEM (default CERTS/ca.crt)")
	return f
}

// Client returns an HTTP client for the broker.
func (f *Flags) Client() (*http.Client, error) {
	if f.Cert == "" {
		f.Cert = filepath.Join(f.Dir, f.ClientID+".chain.crt")
	}
	if f.Key == "" {
		f.Key = filepath.Join(f.Dir, f.ClientID+".key")
	}
	if f.CA == "" {
		f.CA = filepath.Join(f.Dir, "ca.crt")
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate: %w", err)
	}
	rootPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("reading CA root: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return nil, fmt.Errorf("%s holds no PEM certificate", f.CA)
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: roots, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
	}, nil
}

// Call sends body as JSON and decodes the JSON answer into out. A non-2xx
// answer is returned as an error carrying the broker's error code.
func Call(c *http.Client, method, url string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, raw)
	}
	return json.Unmarshal(raw, out)
}
