package testcaddy

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// waitForOldListeners returns once no address is listened on twice by this
// process, or fails after timeout.
//
// On Linux, Caddy opens each config's TCP listeners anew with SO_REUSEPORT,
// and /load answers once the old servers have been told to shut down, not
// once their sockets are closed (caddyhttp.App.stop says as much). While
// both sockets listen, the kernel hands a new connection to either; one
// queued on the old socket when it closes is reset. So a test's first
// request after a reload could be refused by the config it just replaced —
// a CI flake of TestReloadsKeepSQLiteHandlesFlat. Waiting for the old
// socket to close makes "the reload is done" mean what a test assumes.
func waitForOldListeners(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		twice, err := addressesListenedTwice()
		if err != nil {
			return err
		}
		if len(twice) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the old config still listens on %v %s after the reload", twice, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// addressesListenedTwice returns the local TCP addresses (as the kernel
// writes them, hex) on which more than one of this process's sockets listen.
func addressesListenedTwice() ([]string, error) {
	ours, err := ownSocketInodes()
	if err != nil {
		return nil, err
	}
	count := map[string]int{}
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		if err := countListeners(table, ours, count); err != nil {
			return nil, err
		}
	}
	var twice []string
	for addr, n := range count {
		if n > 1 {
			twice = append(twice, addr)
		}
	}
	return twice, nil
}

// ownSocketInodes returns the inodes of the sockets this process holds open.
func ownSocketInodes() (map[string]bool, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue // closed since the listing
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return inodes, nil
}

// countListeners adds to count, per local address, the listening sockets of
// a /proc/net/tcp table whose inode is in ours.
func countListeners(table string, ours map[string]bool, count map[string]int) error {
	f, err := os.Open(table)
	if err != nil {
		if os.IsNotExist(err) {
			return nil // no IPv6 in this kernel
		}
		return err
	}
	defer f.Close()
	const listenState = "0A"
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != listenState || !ours[fields[9]] {
			continue
		}
		count[fields[1]]++
	}
	return sc.Err()
}
