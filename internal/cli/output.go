package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"golang.org/x/term"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

// streams are the terminal the commands talk to; tests replace them.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
	// stdinTerminal reports whether a person can answer prompts.
	stdinTerminal func() bool
	// stderrTerminal reports whether progress can be redrawn in place.
	stderrTerminal func() bool
	// readPassword reads a line from the terminal without echo.
	readPassword func() ([]byte, error)
	now          func() time.Time

	// lines buffers in, so that several prompts read successive lines.
	lines *bufio.Reader
}

// stdio is the terminal the commands talk to; tests replace it.
var stdio = defaultStreams()

func defaultStreams() *streams {
	return &streams{
		in:             os.Stdin,
		out:            os.Stdout,
		err:            os.Stderr,
		stdinTerminal:  func() bool { return term.IsTerminal(int(os.Stdin.Fd())) },
		stderrTerminal: func() bool { return term.IsTerminal(int(os.Stderr.Fd())) },
		readPassword:   func() ([]byte, error) { return term.ReadPassword(int(os.Stdin.Fd())) },
		now:            time.Now,
	}
}

// readLine reads one line of stdin without its line ending.
func (s *streams) readLine() (string, error) {
	if s.lines == nil {
		s.lines = bufio.NewReader(s.in)
	}
	line, err := s.lines.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// console is what a command prints to and asks on: the terminal, in the
// format --json chose.
type console struct {
	io      *streams
	jsonOut bool
}

func newConsole(fl caddycmd.Flags) *console {
	return &console{io: stdio, jsonOut: fl.Bool("json")}
}

// printJSON writes v as indented JSON.
func (c *console) printJSON(v any) error {
	enc := json.NewEncoder(c.io.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// printResult reports the outcome of a command that changes one thing: v
// as JSON with --json, otherwise the sentence format describes.
func (c *console) printResult(v any, format string, args ...any) error {
	if c.jsonOut {
		return c.printJSON(v)
	}
	c.printf(format, args...)
	return nil
}

// jsonList converts the rows of a list command to their JSON form. It is
// never nil, so that an empty list prints as [] rather than null.
func jsonList[T, J any](rows []T, toJSON func(*T) J) []J {
	out := make([]J, 0, len(rows))
	for i := range rows {
		out = append(out, toJSON(&rows[i]))
	}
	return out
}

// printf writes a line for people; --json output stays pure.
func (c *console) printf(format string, args ...any) {
	if !c.jsonOut {
		fmt.Fprintf(c.io.out, format, args...)
	}
}

// table writes rows under header, aligned in columns. Cells are escaped:
// message bodies and workers' error texts come from outside, and a control
// character in them must neither break the columns nor drive the
// operator's terminal.
func (c *console) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.io.out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, joinCells(header))
	for _, r := range rows {
		fmt.Fprintln(tw, joinCells(r))
	}
	return tw.Flush()
}

func joinCells(cells []string) string {
	escaped := make([]string, len(cells))
	for i, cell := range cells {
		escaped[i] = escapeControl(cell)
	}
	return strings.Join(escaped, "\t")
}

// escapeControl writes control characters (C0, DEL, C1) as Go escapes.
func escapeControl(s string) string {
	if !strings.ContainsFunc(s, isControl) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if isControl(r) {
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

// confirm asks question and returns nil on yes. With force it does not
// ask; without a terminal to ask on it refuses with a usage error.
func (c *console) confirm(force bool, question string) error {
	if force {
		return nil
	}
	if !c.io.stdinTerminal() {
		return usagef("refusing to proceed without confirmation (stdin is not a terminal; pass --force): %s", question)
	}
	fmt.Fprintf(c.io.err, "%s [y/N] ", question)
	answer, err := c.io.readLine()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return nil
	}
	return errors.New("aborted; nothing was changed")
}

// maxPasswordInput bounds what --password-stdin reads.
const maxPasswordInput = 4096

// newPassword gets a password: from stdin with fromStdin (first line,
// for scripts), else typed twice at the terminal without echo. The policy
// is checked before the second prompt, so a typist learns at once.
func (c *console) newPassword(fromStdin bool) (string, error) {
	if fromStdin {
		data, err := io.ReadAll(io.LimitReader(c.io.in, maxPasswordInput+1))
		if err != nil {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		if len(data) > maxPasswordInput {
			return "", usagef("--password-stdin: the input is longer than %d bytes", maxPasswordInput)
		}
		pw, _, _ := strings.Cut(string(data), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		return pw, broker.CheckPassword(pw)
	}
	if !c.io.stdinTerminal() {
		return "", usagef("stdin is not a terminal to type a password on; pass it with --password-stdin")
	}
	const attempts = 3
	for range attempts {
		first, err := c.promptHidden("New password: ")
		if err != nil {
			return "", err
		}
		if err := broker.CheckPassword(first); err != nil {
			fmt.Fprintf(c.io.err, "%s\n", message(err))
			continue
		}
		second, err := c.promptHidden("Repeat password: ")
		if err != nil {
			return "", err
		}
		if first != second {
			fmt.Fprintln(c.io.err, "The passwords do not match.")
			continue
		}
		return first, nil
	}
	return "", fmt.Errorf("no acceptable password after %d attempts", attempts)
}

func (c *console) promptHidden(prompt string) (string, error) {
	fmt.Fprint(c.io.err, prompt)
	pw, err := c.io.readPassword()
	fmt.Fprintln(c.io.err)
	if err != nil {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return string(pw), nil
}

// progress draws a progress bar on a terminal and prints a line every
// tenth of the way otherwise (logs, pipes).
type progress struct {
	w        io.Writer
	terminal bool
	label    string
	lastTen  int64
}

const barWidth = 30

func (p *progress) update(done, total int64) {
	if total <= 0 {
		return
	}
	pct := min(done*100/total, 100)
	if !p.terminal {
		if ten := pct / 10; ten > p.lastTen || done == total {
			p.lastTen = ten
			fmt.Fprintf(p.w, "%s: %s/%s (%d%%)\n", p.label, count(done), count(total), pct)
		}
		return
	}
	filled := int(pct * barWidth / 100)
	fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %s/%s", p.label,
		strings.Repeat("=", filled), strings.Repeat(" ", barWidth-filled), pct, count(done), count(total))
}

// end finishes the bar's line.
func (p *progress) end() {
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

// count formats n with thousands separators: 12345 → "12,345".
func count(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// plural counts n things: "1 body", "2 bodies", "1,500 bodies".
func plural(n int64, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return count(n) + " " + many
}

// timeText formats a time for a table: UTC, to the second.
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func timePtrText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return timeText(*t)
}

func strPtrText(s *string) string {
	if s == nil || *s == "" {
		return "-"
	}
	return *s
}

// signalContext is cancelled on SIGINT or SIGTERM.
func signalContext(parent context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}
