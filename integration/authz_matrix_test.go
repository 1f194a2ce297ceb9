package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/msgbroker/caddy-msgbroker/internal/apivalidate"
	"github.com/msgbroker/caddy-msgbroker/internal/tokens"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// credential is one way a caller can (try to) authenticate.
type credential int

const (
	credNone credential = iota
	credUser
	credAdmin
	credExpired
	credAlgNone
	credRefresh
	credProxy
	credWorker
	credRevoked
	credForeignCA
	numCredentials
)

var credentialNames = [numCredentials]string{"no credentials", "user token", "admin token", "expired token", "alg-none token",
	"refresh token as access token", "proxy certificate", "worker certificate", "revoked certificate", "certificate from another CA"}

// tlsRefused is the "status" of a request whose handshake was refused.
const tlsRefused = -1

// authzRow is one route and what each credential gets from it.
type authzRow struct {
	route string // "METHOD /path/{template}" as in the OpenAPI document
	// path is the concrete path requested (template filled in).
	path string
	// want is the status per credential.
	want [numCredentials]int
}

// everyone answers the same status to every credential (public routes, and
// routes that read no credential).
func everyone(status int) (w [numCredentials]int) {
	for i := range w {
		w[i] = status
	}
	return w
}

// bearer: a token route any logged-in account may call; certificates are
// not asked for on the token listener, so they count as no credentials.
func bearer(userStatus, adminStatus int) [numCredentials]int {
	w := everyone(http.StatusUnauthorized)
	w[credUser], w[credAdmin] = userStatus, adminStatus
	return w
}

// adminOnly: an admin API route.
func adminOnly(adminStatus int) [numCredentials]int {
	w := bearer(http.StatusForbidden, adminStatus)
	return w
}

// mtls: an internal API route; without a valid certificate of the broker's
// CA there is no TLS connection at all.
func mtls(proxyStatus, workerStatus int) [numCredentials]int {
	w := everyone(tlsRefused)
	w[credProxy], w[credWorker] = proxyStatus, workerStatus
	return w
}

const (
	absentMessage = "00000000-0000-4000-8000-000000000000"
	absentUser    = "999999"
)

// authzMatrix is every route of the product. Requests carry the body "{}"
// where a body is taken, so the expected status of an authorized caller is
// the route's answer to an empty request (400), or its read (200/404).
var authzMatrix = []authzRow{
	{route: "GET /health", want: everyone(http.StatusOK)},
	{route: "HEAD /health", want: everyone(http.StatusOK)},
	{route: "GET /crl", want: everyone(http.StatusOK)},
	{route: "HEAD /crl", want: everyone(http.StatusOK)},
	{route: "GET /openapi.json", want: everyone(http.StatusOK)},
	{route: "HEAD /openapi.json", want: everyone(http.StatusOK)},
	{route: "GET /openapi.yaml", want: everyone(http.StatusOK)},
	{route: "HEAD /openapi.yaml", want: everyone(http.StatusOK)},
	{route: "GET /docs", want: everyone(http.StatusOK)},
	{route: "HEAD /docs", want: everyone(http.StatusOK)},
	{route: "GET /redoc", want: everyone(http.StatusOK)},
	{route: "HEAD /redoc", want: everyone(http.StatusOK)},
	{route: "GET /docs/assets/{asset}", path: "/docs/assets/swagger-ui.css", want: everyone(http.StatusOK)},
	{route: "HEAD /docs/assets/{asset}", path: "/docs/assets/swagger-ui.css", want: everyone(http.StatusOK)},
	// The web portal's page is public; its data comes from the API below.
	{route: "GET /portal", want: everyone(http.StatusOK)}, // the 308 to /portal/app, followed
	{route: "GET /portal/app", want: everyone(http.StatusOK)},
	{route: "HEAD /portal/app", want: everyone(http.StatusOK)},
	{route: "GET /portal/assets/{portalAsset}", path: "/portal/assets/app.js", want: everyone(http.StatusOK)},
	{route: "HEAD /portal/assets/{portalAsset}", path: "/portal/assets/app.css", want: everyone(http.StatusOK)},
	// The device channel authenticates devices by their key, not callers.
	{route: "POST /api", want: everyone(http.StatusBadRequest)},

	{route: "POST /internal/messages/register", want: mtls(http.StatusBadRequest, http.StatusForbidden)},
	{route: "POST /internal/messages/deliver", want: mtls(http.StatusForbidden, http.StatusBadRequest)},
	{route: "PUT /internal/messages/{id}/status", path: "/internal/messages/" + absentMessage + "/status", want: mtls(http.StatusForbidden, http.StatusBadRequest)},

	// Login, refresh and logout read no access token.
	{route: "POST /portal/auth/login", want: everyone(http.StatusBadRequest)},
	{route: "POST /portal/auth/refresh", want: everyone(http.StatusUnauthorized)},
	{route: "POST /portal/auth/logout", want: everyone(http.StatusUnauthorized)},
	{route: "GET /portal/profile", want: bearer(http.StatusOK, http.StatusOK)},
	{route: "PUT /portal/profile/password", want: bearer(http.StatusBadRequest, http.StatusBadRequest)},
	{route: "GET /portal/messages", want: bearer(http.StatusOK, http.StatusOK)},
	{route: "GET /portal/messages/{id}", path: "/portal/messages/" + absentMessage, want: bearer(http.StatusNotFound, http.StatusNotFound)},

	{route: "POST /admin/certificates/generate", want: adminOnly(http.StatusBadRequest)},
	{route: "POST /admin/certificates/revoke", want: adminOnly(http.StatusBadRequest)},
	{route: "GET /admin/certificates", want: adminOnly(http.StatusOK)},
	{route: "GET /admin/crl", want: adminOnly(http.StatusOK)},
	{route: "POST /admin/users", want: adminOnly(http.StatusBadRequest)},
	{route: "GET /admin/users", want: adminOnly(http.StatusOK)},
	{route: "GET /admin/users/{id}", path: "/admin/users/" + absentUser, want: adminOnly(http.StatusNotFound)},
	{route: "PATCH /admin/users/{id}", path: "/admin/users/" + absentUser, want: adminOnly(http.StatusBadRequest)},
	{route: "DELETE /admin/users/{id}", path: "/admin/users/" + absentUser, want: adminOnly(http.StatusNotFound)},
	{route: "GET /admin/stats", want: adminOnly(http.StatusOK)},
	{route: "GET /admin/audit", want: adminOnly(http.StatusOK)},
}

// documentedRoutes lists "METHOD /path" of every operation of the
// OpenAPI document.
func documentedRoutes(t *testing.T) []string {
	doc := apivalidate.Document(t)
	var routes []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			routes = append(routes, method+" "+path)
		}
	}
	sort.Strings(routes)
	return routes
}

// TestAuthorizationMatrix sends every route of the product every kind of
// credential against a real gateway, and fails for a documented route
// without a row (so a new route needs its row) or a row of no route.
func TestAuthorizationMatrix(t *testing.T) {
	documented := documentedRoutes(t)
	var rows []authzRow
	for _, row := range authzMatrix {
		if !slices.Contains(documented, row.route) {
			t.Errorf("the matrix has a row for %s, which the OpenAPI document does not have", row.route)
			continue
		}
		rows = append(rows, row)
	}
	for _, route := range documented {
		if !slices.ContainsFunc(authzMatrix, func(r authzRow) bool { return r.route == route }) {
			t.Errorf("%s is in the OpenAPI document but has no row in the authorization matrix (integration/authz_matrix_test.go)", route)
		}
	}
	if t.Failed() {
		return
	}
	m := newMatrixGateway(t)
	for _, row := range rows {
		t.Run(row.route, func(t *testing.T) {
			for c := range numCredentials {
				if got := m.status(row, c); got != row.want[c] {
					t.Errorf("%s: %s = %s, want %s", row.route, credentialNames[c], statusText(got), statusText(row.want[c]))
				}
			}
		})
	}
}

func statusText(s int) string {
	if s == tlsRefused {
		return "TLS handshake refused"
	}
	return strconv.Itoa(s)
}

// matrixGateway holds a gateway and one of each credential.
type matrixGateway struct {
	*portalGateway
	tokens  [numCredentials]string
	certs   [numCredentials]*tls.Certificate
	clients [numCredentials]*http.Client
	web     *http.Client
}

func newMatrixGateway(t *testing.T) *matrixGateway {
	p := startAdmin(t, "sqlite")
	p.createUser("tenant@example.com", storage.RoleUser, "proxy-a")
	m := &matrixGateway{portalGateway: p, web: p.client}
	m.tokens[credUser], _ = p.login("tenant@example.com")
	m.tokens[credAdmin], m.tokens[credRefresh] = p.login("admin@example.com")
	m.tokens[credExpired], m.tokens[credAlgNone] = m.forgedAdminTokens()

	proxy, _ := p.issue("proxy-a", "proxy")
	worker, _ := p.issue("worker-a", "worker")
	revoked, serial := p.issue("proxy-r", "proxy")
	if _, err := p.services().Certificates.Revoke(context.Background(), adminActor, serial, "keyCompromise"); err != nil {
		t.Fatal(err)
	}
	foreign := foreignCertificate(t, "proxy-a")
	m.certs[credProxy], m.certs[credWorker], m.certs[credRevoked], m.certs[credForeignCA] = &proxy, &worker, &revoked, &foreign
	for c := range numCredentials {
		m.clients[c] = m.mtlsClient(m.certs[c])
	}
	return m
}

// forgedAdminTokens signs, with the gateway's own secret, an admin access
// token that expired yesterday, and makes an unsigned (alg none) one.
func (m *matrixGateway) forgedAdminTokens() (expired, algNone string) {
	t := m.t
	svcs := m.services()
	u, err := svcs.Users.Lookup(context.Background(), "admin@example.com")
	if err != nil {
		t.Fatal(err)
	}
	kid := tokens.HMACKey(svcs.JWTKey).ID
	now := time.Now()
	claims := jwt.MapClaims{"sub": strconv.FormatInt(u.ID, 10), "email": u.Email, "role": "admin", "typ": "access",
		"iss": tokens.DefaultIssuer, "aud": []string{tokens.DefaultAudience}, "jti": "matrix",
		"iat": now.Add(-48 * time.Hour).Unix(), "nbf": now.Add(-48 * time.Hour).Unix(), "exp": now.Add(-24 * time.Hour).Unix(),
		"pws": u.PasswordChangedAt.UnixMicro()}
	expired = forgeToken(t, jwt.SigningMethodHS256, svcs.JWTKey, kid, claims)
	claims["iat"], claims["nbf"], claims["exp"] = now.Unix(), now.Unix(), now.Add(time.Hour).Unix()
	h, _ := json.Marshal(map[string]any{"alg": "none", "kid": kid})
	b, _ := json.Marshal(claims)
	algNone = base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(b) + "."
	return expired, algNone
}

// mtlsClient presents cert whatever CAs the server names, as curl does
// (Go's client would otherwise withhold a foreign certificate).
func (m *matrixGateway) mtlsClient(cert *tls.Certificate) *http.Client {
	cfg := m.tlsConfig(nil)
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert == nil {
			return &tls.Certificate{}, nil
		}
		return cert, nil
	}
	return apivalidate.Client(m.t, &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}})
}

// status sends row's request with credential c.
func (m *matrixGateway) status(row authzRow, c credential) int {
	t := m.t
	method, path, _ := strings.Cut(row.route, " ")
	if row.path != "" {
		path = row.path
	}
	client, base := m.web, fmt.Sprintf("https://localhost:%d", m.port)
	if strings.HasPrefix(path, "/internal/") {
		client, base = m.clients[c], fmt.Sprintf("https://localhost:%d", m.mtlsPort)
	}
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		body = strings.NewReader("{}")
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if m.tokens[c] != "" {
		req.Header.Set("Authorization", "Bearer "+m.tokens[c])
	}
	resp, err := client.Do(req)
	if err != nil {
		if isHandshakeRefusal(err) || strings.Contains(err.Error(), "tls:") {
			return tlsRefused
		}
		t.Fatalf("%s with %s: %v", row.route, credentialNames[c], err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// foreignCertificate is a client certificate for cn from a CA the gateway
// has never seen.
func foreignCertificate(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "foreign CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, OrganizationalUnit: []string{"proxy"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
}
