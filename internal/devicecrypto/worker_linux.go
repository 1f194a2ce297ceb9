package devicecrypto

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// startWorker starts this executable again as a key generator of bits
// bits. Called from the pool's SCHED_IDLE thread, the process inherits the
// class (every thread it makes does too), and with GOMAXPROCS=1 it uses at
// most one core. Generating there, rather than on a goroutine of the
// gateway, keeps the gateway's Go scheduler whole: a goroutine generating
// a key holds one of its GOMAXPROCS slots whatever its thread's priority
// (on 2 cores that halved message decryption during refills), and its
// garbage sets off collections the requests pay for. The worker dies with
// the thread that started it (Pdeathsig) and ends when its input closes.
func startWorker(bits int) (*worker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), workerEnv+"="+strconv.Itoa(bits), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	ask, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	keys, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the key generator: %w", err)
	}
	return &worker{bits: bits, ask: ask, keys: bufio.NewReader(keys), wait: cmd.Wait, pid: cmd.Process.Pid}, nil
}
