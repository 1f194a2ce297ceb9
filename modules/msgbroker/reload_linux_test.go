package msgbroker_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/msgbroker/caddy-msgbroker/internal/testcaddy"
)

// TestReloadsKeepSQLiteHandlesFlat is the SQLite side of the reload test:
// after 20 reloads the process must hold the very same open files on the
// database — none reopened, none leaked.
//
// A descriptor number proves nothing by itself: a database closed and
// opened again gets the lowest free number, often the one it had. The file
// offset belongs to the open file, not to the number, and SQLite reads and
// writes with pread and pwrite, which leave it alone; so each descriptor is
// marked with an offset of its own, and a reopened file shows up without
// its mark.
func TestReloadsKeepSQLiteHandlesFlat(t *testing.T) {
	dir, port := t.TempDir(), testcaddy.FreePort(t)
	srv := testcaddy.Start(t, devConfig(dir, port, "r0"))
	getHealth(t, port)
	dbFile := filepath.Join(dir, "msgbroker.db")
	before := openHandles(t, dbFile)
	if len(before) == 0 {
		t.Fatal("no open handle on the database after a health check")
	}
	marks := map[int]int64{}
	for fd := range before {
		marks[fd] = 1<<30 + int64(fd)
		if _, err := syscall.Seek(fd, marks[fd], io.SeekStart); err != nil {
			t.Fatalf("marking descriptor %d: %v", fd, err)
		}
	}
	for i := 1; i <= 20; i++ {
		if err := srv.Reload(devConfig(dir, port, fmt.Sprintf("r%d", i))); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
		getHealth(t, port)
	}
	after := openHandles(t, dbFile)
	if len(after) == 0 {
		t.Fatal("no open handle on the database after the reloads and a health check")
	}
	if len(after) > len(before) {
		t.Errorf("open handles on the database grew from %d to %d over 20 reloads", len(before), len(after))
	}
	for fd := range after {
		mark, ok := marks[fd]
		switch {
		case !ok:
			t.Errorf("descriptor %d on the database was opened by a reload (before %v, after %v)", fd, before, after)
		case fileOffset(t, fd) != mark:
			t.Errorf("descriptor %d on the database was closed and reopened by a reload: offset %d, not its mark %d", fd, fileOffset(t, fd), mark)
		}
	}
}

// openHandles returns this process's file descriptors open on path.
func openHandles(t *testing.T, path string) map[int]bool {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[int]bool{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil || target != path {
			continue
		}
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		fds[fd] = true
	}
	return fds
}

// fileOffset reads the offset of the open file behind fd from
// /proc/self/fdinfo, without moving it.
func fileOffset(t *testing.T, fd int) int64 {
	t.Helper()
	info, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(info)) {
		if v, ok := strings.CutPrefix(line, "pos:"); ok {
			pos, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return pos
		}
	}
	t.Fatalf("no pos line in /proc/self/fdinfo/%d", fd)
	return 0
}
