package integration

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
	"github.com/msgbroker/caddy-msgbroker/storage/storagetest"
)

// TestBinaryListsEveryModule checks the custom binary registers all of our
// modules (what `xcaddy build --with` must also give).
func TestBinaryListsEveryModule(t *testing.T) {
	out, err := exec.Command(cliBinary(t), "list-modules").CombinedOutput()
	if err != nil {
		t.Fatalf("list-modules: %v\n%s", err, out)
	}
	for _, id := range []string{
		"msgbroker",
		"http.handlers.msgbroker_health",
		"http.handlers.msgbroker_internal",
		"http.handlers.msgbroker_docs",
		"http.handlers.msgbroker_crl",
		"http.handlers.msgbroker_portal",
		"http.handlers.msgbroker_admin",
		"tls.client_auth.verifier.msgbroker",
		"tls.ca_pool.source.msgbroker",
		"http.handlers.msgbroker_device",
		"caddy.storage.msgbroker_sql",
		"caddy.listeners.msgbroker_handshakes",
	} {
		if !strings.Contains("\n"+string(out), "\n"+id+"\n") {
			t.Errorf("list-modules does not list %s", id)
		}
	}
}

// TestValidatingTheEmbeddedDefaultCreatesNothingOfOurs checks that `caddy
// validate` of Caddyfile.example leaves no database or key behind.
func TestValidatingTheEmbeddedDefaultCreatesNothingOfOurs(t *testing.T) {
	bin := cliBinary(t)
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	validateDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(validateDir, "Caddyfile.example"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	validate := exec.Command(bin, "validate", "--config", "Caddyfile.example")
	validate.Dir = validateDir
	if out, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	// Caddy's own pki app creates its CA when provisioned, even by
	// validate; ours must create nothing.
	for _, name := range []string{"msgbroker.db", "secrets"} {
		if _, err := os.Stat(filepath.Join(validateDir, "data", name)); !os.IsNotExist(err) {
			t.Errorf("caddy validate created data/%s", name)
		}
	}

}

// TestEmbeddedDefaultRunsAsAnOrdinaryUser runs the README's first command,
// `caddy run --config Caddyfile.example`, in an empty directory as an
// unprivileged user (nobody, when the test runs as root), on free ports
// chosen through the example's port variables. It checks /health on both
// loopback names, that every socket the gateway opened is on loopback (no
// port 80 redirect listener), that no trust store was touched, and then
// follows the quick start: the CLI issues a certificate, and the example
// proxy registers a message with it.
func TestEmbeddedDefaultRunsAsAnOrdinaryUser(t *testing.T) {
	ex := runEmbeddedDefault(t)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		var health map[string]any
		url := fmt.Sprintf("http://%s:%d/health", host, ex.httpPort)
		if status := testcaddy.GetJSON(t, url, &health); status != http.StatusOK || health["status"] != "healthy" {
			t.Errorf("GET %s = %d %v, want 200 healthy", url, status, health)
		}
	}
	// The admin API is served beside the portal and asks for a token.
	adminURL := fmt.Sprintf("http://localhost:%d/admin/users", ex.httpPort)
	var refused map[string]any
	if status := testcaddy.GetJSON(t, adminURL, &refused); status != http.StatusUnauthorized {
		t.Errorf("GET %s = %d %v, want 401", adminURL, status, refused)
	}
	// The web portal: /portal leads to the page.
	resp, err := http.Get(fmt.Sprintf("http://localhost:%d/portal", ex.httpPort))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/portal/app" || !strings.Contains(string(page), "<title>msgbroker portal</title>") {
		t.Errorf("GET /portal ended at %s with %d", resp.Request.URL, resp.StatusCode)
	}
	want := map[int]bool{ex.httpPort: true, ex.mtlsPort: true, ex.adminPort: true}
	for _, addr := range listeningSockets(t, ex.cmd.Process.Pid) {
		if !addr.Addr().IsLoopback() || !want[int(addr.Port())] {
			t.Errorf("the gateway listens on %s; want only loopback ports %d, %d and %d", addr, ex.httpPort, ex.mtlsPort, ex.adminPort)
		}
	}
	for _, name := range []string{"msgbroker.db", "secrets/keyring.json", "caddy/pki/authorities/local/root.crt"} {
		if _, err := os.Stat(filepath.Join(ex.dir, "data", name)); err != nil {
			t.Errorf("data/%s not created: %v", name, err)
		}
	}
	logs := ex.logs.String()
	if !strings.Contains(logs, "DEVELOPMENT ENCRYPTION KEY GENERATED") {
		t.Errorf("no loud log line about the generated development key:\n%s", logs)
	}
	if !strings.Contains(logs, "trust store installation disabled") || strings.Contains(logs, "installing root certificate") {
		t.Errorf("the gateway did not leave the system trust store alone:\n%s", logs)
	}

	ex.cli("msgbroker", "cert", "issue", "proxy-1", "--role", "proxy", "--out", "./certs", "--config", "Caddyfile.example")
	proxy := filepath.Join(ex.dir, "proxy")
	if out, err := exec.Command("go", "build", "-o", proxy, "../examples/clients/proxy").CombinedOutput(); err != nil {
		t.Fatalf("building the example proxy: %v\n%s", err, out)
	}
	out := ex.as(proxy, "-url", fmt.Sprintf("https://localhost:%d", ex.mtlsPort), "-client", "proxy-1", "-body", "hi")
	if !strings.Contains(out, ": queued at ") {
		t.Errorf("the example proxy printed %q", out)
	}
}

// TestEmbeddedDefaultCutsOffAStalledBody sends the internal API a request
// whose body never arrives: the example's read_body timeout (10 s) must end
// it, where Caddy's default would hold the connection open.
func TestEmbeddedDefaultCutsOffAStalledBody(t *testing.T) {
	ex := runEmbeddedDefault(t)
	ex.cli("msgbroker", "cert", "issue", "proxy-1", "--role", "proxy", "--out", "./certs", "--config", "Caddyfile.example")
	pair, err := tls.LoadX509KeyPair(filepath.Join(ex.dir, "certs", "proxy-1.crt"), filepath.Join(ex.dir, "certs", "proxy-1.key"))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, err := os.ReadFile(filepath.Join(ex.dir, "certs", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", ex.mtlsPort), &tls.Config{
		ServerName: "localhost", RootCAs: roots, Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"},
	})
	if err != nil {
		t.Fatalf("handshake with the certificate alone: %v", err)
	}
	defer conn.Close()
	start := time.Now()
	_, err = fmt.Fprintf(conn, "POST /internal/messages/register HTTP/1.1\r\nHost: localhost\r\n"+
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"sender_number\":")
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _ = io.Copy(io.Discard, conn) // until the server ends the connection
	if held := time.Since(start); held > 15*time.Second {
		t.Errorf("a stalled body held the connection %s, want about 10 s (read_body)", held.Round(time.Second))
	} else {
		t.Logf("a stalled body was cut off after %s", held.Round(100*time.Millisecond))
	}
}

// example is Caddyfile.example running as an unprivileged user.
type example struct {
	t                             *testing.T
	dir, bin                      string
	httpPort, mtlsPort, adminPort int
	cmd                           *exec.Cmd
	logs                          *lockedBuffer
	env                           []string
}

// runEmbeddedDefault starts the binary on Caddyfile.example in a fresh
// directory owned by the user it runs as, and waits for /health.
func runEmbeddedDefault(t *testing.T) *example {
	t.Helper()
	ex := newExample(t, "../Caddyfile.example")
	ex.httpPort, ex.mtlsPort, ex.adminPort = testcaddy.FreePort(t), testcaddy.FreePort(t), testcaddy.FreePort(t)
	ex.env = append(ex.env,
		fmt.Sprintf("MSGBROKER_HTTP_PORT=%d", ex.httpPort),
		fmt.Sprintf("MSGBROKER_MTLS_PORT=%d", ex.mtlsPort),
		fmt.Sprintf("MSGBROKER_ADMIN_PORT=%d", ex.adminPort))
	ex.cmd = ex.command(ex.bin, "run", "--config", "Caddyfile.example")
	ex.cmd.Stdout, ex.cmd.Stderr = ex.logs, ex.logs
	if err := ex.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = ex.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = ex.cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", ex.httpPort))
		if err == nil {
			resp.Body.Close()
			return ex
		}
		select {
		case <-exited:
			t.Fatalf("the gateway exited: %s\n%s", ex.cmd.ProcessState, ex.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never answered /health: %v\n%s", err, ex.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newExample prepares a fresh directory, owned by the user the example
// runs as, holding the binary and the Caddyfile config, and an environment
// with nothing but PATH and a home in that directory.
func newExample(t *testing.T, config string) *example {
	t.Helper()
	dir, err := os.MkdirTemp("", "msgbroker-example-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ex := &example{t: t, dir: dir, logs: &lockedBuffer{}, bin: filepath.Join(dir, "caddy")}
	copyFile(t, cliBinary(t), ex.bin, 0o755)
	copyFile(t, config, filepath.Join(dir, filepath.Base(config)), 0o644)
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, nobodyID, nobodyID); err != nil {
			t.Fatal(err)
		}
	}
	ex.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"XDG_DATA_HOME=" + filepath.Join(dir, "xdg-data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "xdg-config")}
	return ex
}

// nobodyID is the uid and gid the example runs as when the test is root.
const nobodyID = 65534

// command runs name as the example's user, in its directory.
func (ex *example) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	if os.Geteuid() == 0 {
		cmd = exec.Command("setpriv", append([]string{"--reuid", strconv.Itoa(nobodyID), "--regid", strconv.Itoa(nobodyID),
			"--clear-groups", "--", name}, args...)...)
	}
	cmd.Dir, cmd.Env = ex.dir, ex.env
	return cmd
}

// as runs a program as the example's user and returns its output.
func (ex *example) as(name string, args ...string) string {
	ex.t.Helper()
	out, err := ex.command(name, args...).CombinedOutput()
	if err != nil {
		ex.t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// cli runs the binary's CLI as the example's user.
func (ex *example) cli(args ...string) string {
	ex.t.Helper()
	return ex.as(ex.bin, args...)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

// listeningSockets returns the TCP sockets in LISTEN state and the bound
// UDP sockets that process pid holds, read from /proc.
func listeningSockets(t *testing.T, pid int) []netip.AddrPort {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("reading the gateway's descriptors: %v", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if inode, ok := strings.CutPrefix(link, "socket:["); err == nil && ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var out []netip.AddrPort
	for _, table := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6 in this kernel
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || !inodes[f[9]] || (strings.HasPrefix(table, "tcp") && f[3] != "0A") {
				continue
			}
			out = append(out, procAddr(t, f[1]))
		}
	}
	if len(out) == 0 {
		t.Fatal("found no listening socket of the gateway")
	}
	return out
}

// procAddr decodes /proc/net's HEXIP:HEXPORT, the address in host (little-
// endian) order by 32-bit word.
func procAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ipHex, portHex, _ := strings.Cut(s, ":")
	raw, err := hex.DecodeString(ipHex)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	for w := 0; w+4 <= len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	addr, _ := netip.AddrFromSlice(raw)
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		t.Fatalf("parsing %q: %v", s, err)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port))
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBuildScriptInstallsXcaddyIntoGOBIN runs xcaddy/build.sh with GOBIN
// set and no xcaddy on PATH: it must find the xcaddy it installed there and
// build a binary with our modules.
// TestBuildScriptFindsXcaddyInGOBIN runs build.sh --check where xcaddy is
// not on PATH and GOBIN is set: the script installs xcaddy into GOBIN and
// must find it there (it once looked only in GOPATH/bin). The whole build
// is TestBuildScriptInstallsXcaddyIntoGOBIN, opt-in for its ten minutes.
func TestBuildScriptFindsXcaddyInGOBIN(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	gobin := t.TempDir()
	cmd := exec.Command("./xcaddy/build.sh", "--check")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "PATH="+filepath.Dir(goBin)+":/usr/bin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("xcaddy/build.sh --check with GOBIN set: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "xcaddy v0.4.5") || !strings.Contains(string(out), "at "+filepath.Join(gobin, "xcaddy")) {
		t.Fatalf("build.sh --check did not run the xcaddy it installed into GOBIN:\n%s", out)
	}
}

func TestBuildScriptInstallsXcaddyIntoGOBIN(t *testing.T) {
	// xcaddy builds with -trimpath in a module of its own, so nothing
	// comes from the build cache: about 10 minutes on the 2-core machine.
	if os.Getenv("MSGBROKER_TEST_BUILD_SCRIPT") != "1" {
		t.Skip("set MSGBROKER_TEST_BUILD_SCRIPT=1 to install xcaddy and build Caddy with it (about 10 minutes)")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "caddy")
	cmd := exec.Command("./xcaddy/build.sh", out)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "GOBIN="+t.TempDir(), "PATH="+filepath.Dir(goBin)+":/usr/bin:/bin")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xcaddy/build.sh with GOBIN set: %v\n%s", err, msg)
	}
	modules, err := exec.Command(out, "list-modules").CombinedOutput()
	if err != nil || !strings.Contains(string(modules), "tls.ca_pool.source.msgbroker") {
		t.Fatalf("the built binary does not list our modules: %v\n%s", err, modules)
	}
}

// TestEmbeddedDefaultServesTheExampleDeviceClients follows the device
// quick start on Caddyfile.example as an ordinary user: `caddy msgbroker
// device add`, then the example device clients (Go in RSA and in HPKE
// mode, the browser client's code under Node) each open a session, send
// three messages and a duplicate, and close it, against the embedded
// default's built-in directory and in-process store.
func TestEmbeddedDefaultServesTheExampleDeviceClients(t *testing.T) {
	ex := runEmbeddedDefault(t)
	client := filepath.Join(ex.dir, "device")
	if out, err := exec.Command("go", "build", "-o", client, "../examples/clients/device").CombinedOutput(); err != nil {
		t.Fatalf("building the example device client: %v\n%s", err, out)
	}
	api := fmt.Sprintf("http://localhost:%d/api", ex.httpPort)
	runs := map[string][]string{
		"rsa":  {client, "-api", api, "-key", deviceUser + "phone-rsa", "-mode", "rsa", "-n", "3"},
		"hpke": {client, "-api", api, "-key", deviceUser + "phone-hpke", "-mode", "hpke", "-n", "3"},
	}
	if _, err := exec.LookPath("node"); err == nil {
		browser := filepath.Join(ex.dir, "browser")
		if err := os.CopyFS(browser, os.DirFS("../examples/clients/device/browser")); err != nil {
			t.Fatal(err)
		}
		runs["browser"] = []string{"node", filepath.Join(browser, "node.mjs"), api, deviceUser + "phone-browser", "3"}
	} else if os.Getenv(storagetest.EnvRequireServices) == "1" {
		t.Fatal("node is required to run the browser client's code")
	} else {
		t.Log("node is not installed: the browser client is not run")
	}
	for name, args := range runs {
		ex.cli("msgbroker", "device", "add", deviceUser, "phone-"+name, "--name", "Phone "+name, "--status", "on", "--config", "Caddyfile.example")
		out := ex.as(args[0], args[1:]...)
		if !strings.Contains(out, "message 3: duplicate") || !strings.HasSuffix(out, "session closed\n") {
			t.Errorf("%s client:\n%s", name, out)
		}
	}
	// The devices were added "on": each logout wrote its device back off.
	list := ex.cli("msgbroker", "device", "list", "--user", deviceUser, "--config", "Caddyfile.example")
	for name := range runs {
		if !regexp.MustCompile(`(?m)^` + deviceUser + `\s+phone-` + name + `\s+Phone ` + name + `\s+off\s`).MatchString(list) {
			t.Errorf("device list lacks phone-%s, off:\n%s", name, list)
		}
	}
}
