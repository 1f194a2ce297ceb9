package keyring

import "os"

// FileWatch follows a keyring file that `caddy msgbroker keys rotate`
// rewrites while the gateway runs: it reads the file again when its
// modification time or size changed since it was last looked at.
type FileWatch struct {
	path string
	last os.FileInfo
}

// NewFileWatch watches path as it is now (the keyring in memory was read
// from it).
func NewFileWatch(path string) *FileWatch {
	last, _ := os.Stat(path)
	return &FileWatch{path: path, last: last}
}

// Path is the file watched.
func (w *FileWatch) Path() string { return w.path }

// Changed returns the keyring in the file if the file changed since the
// last call, or nil if it did not (or cannot be looked at). A changed file
// that does not load is an error once; it is read again only when it
// changes again, so a half-edited file is reported, not retried in a loop.
func (w *FileWatch) Changed() (*Keyring, error) {
	info, err := os.Stat(w.path)
	if err != nil || (w.last != nil && info.ModTime().Equal(w.last.ModTime()) && info.Size() == w.last.Size()) {
		return nil, nil
	}
	w.last = info
	return Load(w.path)
}
