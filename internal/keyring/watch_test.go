package keyring_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
)

func TestFileWatchReportsEachChangeOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	kr, _, err := keyring.CreateIfMissing(path)
	if err != nil {
		t.Fatal(err)
	}
	w := keyring.NewFileWatch(path)
	if w.Path() != path {
		t.Errorf("Path = %q", w.Path())
	}
	if got, err := w.Changed(); got != nil || err != nil {
		t.Fatalf("unchanged file: %v, %v; want nothing", got, err)
	}

	k, err := keyring.Generate("second")
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.Add(k); err != nil {
		t.Fatal(err)
	}
	if err := keyring.WriteFile(path, kr); err != nil {
		t.Fatal(err)
	}
	got, err := w.Changed()
	if err != nil || got == nil || got.PrimaryID() != "second" {
		t.Fatalf("after a rewrite: %v, %v; want the keyring with the new key", got, err)
	}
	if got, err := w.Changed(); got != nil || err != nil {
		t.Fatalf("the same change reported twice: %v, %v", got, err)
	}

	// Same size, new time: a change too.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Changed(); got == nil || err != nil {
		t.Fatalf("a new modification time: %v, %v; want the keyring", got, err)
	}

	// A broken file is an error once, then waits for the next change.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Changed(); got != nil || err == nil {
		t.Fatalf("a broken file: %v, %v; want an error", got, err)
	}
	if got, err := w.Changed(); got != nil || err != nil {
		t.Fatalf("the broken file again: %v, %v; want nothing until it changes", got, err)
	}

	// A missing file is nothing to report; its return is a change.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Changed(); got != nil || err != nil {
		t.Fatalf("a removed file: %v, %v", got, err)
	}
	if err := keyring.WriteFile(path, kr); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Changed(); got == nil || err != nil {
		t.Fatalf("the file back: %v, %v; want the keyring", got, err)
	}
}

func TestFileWatchOfAMissingFileSeesItAppear(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyring.json")
	w := keyring.NewFileWatch(path)
	if got, err := w.Changed(); got != nil || err != nil {
		t.Fatalf("no file: %v, %v", got, err)
	}
	if _, _, err := keyring.CreateIfMissing(path); err != nil {
		t.Fatal(err)
	}
	if got, err := w.Changed(); got == nil || err != nil {
		t.Fatalf("the file created: %v, %v; want the keyring", got, err)
	}
}
