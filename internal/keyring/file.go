package keyring

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// maxFileSize bounds what Load reads, so that a wrong path such as a
// device or a log file fails fast instead of filling memory. A megabyte
// holds thousands of keys.
const maxFileSize = 1 << 20

// Load reads the keyring file at path. Errors name the file; see [Parse].
// A missing file gives an error that matches [fs.ErrNotExist].
func Load(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("keyring %s: file is larger than %d bytes", path, maxFileSize)
	}
	r, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	return fromRing(r), nil
}

// WriteFile writes kr to path with mode 0600. It writes a temporary file
// in the same directory and renames it over path, so that a crash or a
// full disk leaves either the old file or the new one, never a truncated
// keyring that would make every stored body unreadable.
func WriteFile(path string, kr *Keyring) error {
	data, err := kr.Marshal()
	if err != nil {
		return err
	}
	tmp, err := writeTemp(path, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("keyring: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// CreateIfMissing loads the keyring at path, or, if there is no file
// there, generates a keyring with one key and writes it with mode 0600,
// creating the parent directory with mode 0700 if needed. It is meant for
// the development default; created tells the caller to say loudly that a
// new key was made.
//
// If two processes start at once, exactly one creates the file and the
// other loads it: a keyring file is never overwritten, since bodies may
// already be encrypted under the key it holds.
func CreateIfMissing(path string) (kr *Keyring, created bool, err error) {
	kr, err = Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kr, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("keyring: %w", err)
	}
	key, err := Generate("")
	if err != nil {
		return nil, false, err
	}
	kr, err = NewKeyring(key)
	if err != nil {
		return nil, false, err
	}
	data, err := kr.Marshal()
	if err != nil {
		return nil, false, err
	}
	tmp, err := writeTemp(path, data)
	if err != nil {
		return nil, false, err
	}
	// A hard link, unlike a rename, fails when path exists, so the file
	// appears complete and is never clobbered.
	err = os.Link(tmp, path)
	_ = os.Remove(tmp)
	if errors.Is(err, fs.ErrExist) {
		kr, err = Load(path)
		return kr, false, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("keyring: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, false, err
	}
	return kr, true, nil
}

// CheckPermissions returns an error if the file at path can be read or
// written by anyone but its owner. It is a separate check, meant to be
// logged as a warning, rather than a reason for Load to fail: refusing to
// start over a mode bit would take the whole gateway down. On Windows,
// where mode bits do not describe access, it only checks that the file
// exists.
func CheckPermissions(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("keyring %s: mode %04o lets group or others access the keys; run chmod 600 %s", path, perm, path)
	}
	return nil
}

// writeTemp writes data to a new mode 0600 file beside path, synced to
// disk, and returns its name.
func writeTemp(path string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	// CreateTemp already uses 0600, minus the umask; set it outright so
	// the mode is the documented one whatever the umask.
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("keyring: %w", err)
	}
	return f.Name(), nil
}

// syncDir makes a rename or link in dir durable. Windows cannot sync a
// directory, and NTFS journals the change anyway.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keyring: sync %s: %w", dir, err)
	}
	return nil
}
