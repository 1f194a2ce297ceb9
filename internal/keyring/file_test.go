package keyring

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func skipOnWindows(t *testing.T) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("Windows has no Unix mode bits")
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", path, got, want)
	}
}

func writeFile(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; tests want it exact.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadNamesTheFileInErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	writeFile(t, path, keyFile(`{"version":1,"keys":[{"id":"a","key":"KEY1"},{"id":"x","key":"SHORT"}]}`), 0o600)
	_, err := Load(path)
	want := `keyring ` + path + `: key 2 (id "x"): key must be 32 bytes, got 16`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
}

func TestLoadMissingFileMatchesErrNotExist(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

func TestLoadRejectsOversizedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	writeFile(t, path, make([]byte, maxFileSize+1), 0o600)
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v, want a size error", err)
	}
}

func TestWriteFileReplacesAtomicallyWithMode0600(t *testing.T) {
	skipOnWindows(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	writeFile(t, path, []byte("old, world-readable contents"), 0o644)

	kr := newKeyring(t, newKey("k1", 1), newKey("k2", 2))
	if err := WriteFile(path, kr); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	assertMode(t, path, 0o600)
	back, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got := strings.Join(back.IDs(), ","); got != "k1,k2" {
		t.Errorf("IDs = %s, want k1,k2", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only keys.json (temporary file left behind?)", len(entries))
	}
}

func TestWriteFileRefusesEmptyKeyring(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := WriteFile(path, new(Keyring)); err == nil {
		t.Fatal("WriteFile wrote an empty keyring")
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was created: %v", err)
	}
}

func TestCreateIfMissingCreatesThenReloadsTheSameKey(t *testing.T) {
	skipOnWindows(t)
	dir := filepath.Join(t.TempDir(), "data", "secrets")
	path := filepath.Join(dir, "keyring.json")

	first, created, err := CreateIfMissing(path)
	if err != nil || !created {
		t.Fatalf("first CreateIfMissing = created %v, %v; want created", created, err)
	}
	assertMode(t, dir, 0o700)
	assertMode(t, path, 0o600)
	envelope := encrypt(t, first, "body", "msg-1")

	second, created, err := CreateIfMissing(path)
	if err != nil || created {
		t.Fatalf("second CreateIfMissing = created %v, %v; want loaded", created, err)
	}
	if second.PrimaryID() != first.PrimaryID() {
		t.Errorf("reloaded primary %q, want %q", second.PrimaryID(), first.PrimaryID())
	}
	if got, err := second.Decrypt(envelope, []byte("msg-1")); err != nil || string(got) != "body" {
		t.Errorf("reloaded keyring Decrypt = %q, %v", got, err)
	}
}

func TestCreateIfMissingLeavesAnInvalidFileAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	writeFile(t, path, []byte(`{"version":7}`), 0o600)
	if _, _, err := CreateIfMissing(path); err == nil || !strings.Contains(err.Error(), "unsupported version 7") {
		t.Fatalf("err = %v, want the parse error", err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != `{"version":7}` {
		t.Errorf("file now holds %q, %v", data, err)
	}
}

func TestCheckPermissions(t *testing.T) {
	skipOnWindows(t)
	dir := t.TempDir()
	tests := []struct {
		mode fs.FileMode
		want string // empty for no error
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, "mode 0640 lets group or others access the keys"},
		{0o644, "mode 0644"},
		{0o602, "mode 0602"},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := filepath.Join(dir, tt.mode.String())
			writeFile(t, path, []byte("{}"), tt.mode)
			err := CheckPermissions(path)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("err = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	if err := CheckPermissions(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

// TestLoadAcceptsAFileOfExactlyTheMaximumSize: the limit is inclusive.
func TestLoadAcceptsAFileOfExactlyTheMaximumSize(t *testing.T) {
	k, err := Generate("k1")
	if err != nil {
		t.Fatal(err)
	}
	kr, err := NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	data, err := kr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	padded := append(data, bytes.Repeat([]byte(" "), maxFileSize-len(data))...)
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := os.WriteFile(path, padded, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Fatalf("a file of exactly %d bytes: %v", maxFileSize, err)
	}
	if err := os.WriteFile(path, append(padded, ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a file one byte over the limit: %v", err)
	}
}
