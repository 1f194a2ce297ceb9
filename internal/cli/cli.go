// Package cli adds the broker's admin CLI to the caddy command as
// `caddy msgbroker …`: users, client certificates, messages, statistics,
// migrations, encryption keys and the built-in device directory.
//
// The subcommands read the same config as `caddy run` (--config, --adapter;
// an adjacent Caddyfile by default) and open the msgbroker app's database,
// keys and CA storage themselves through msgbroker.OpenOffline, since Caddy
// cannot provision an app outside a running instance. Every rule lives in
// the broker and storage packages, shared with the admin API; this package
// only parses arguments, asks for confirmation and prints.
//
// Output is an aligned table (or a short sentence) by default and JSON with
// --json. Exit codes: 0 success, 1 failure, 2 usage error (unknown command
// or flag, bad argument, or a confirmation that cannot be asked).
package cli

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "msgbroker",
		Usage: "<command> [--config <path>] [--adapter <name>] [--json]",
		Short: "Administers the message broker: users, certificates, messages, keys, migrations",
		Long: `
Administers the message broker configured in the msgbroker global option
of the config that 'caddy run' uses (--config, --adapter; an adjacent
Caddyfile by default). The database, keys and CA storage are opened
directly, so a running gateway need not be reachable; it sees every change
at once (users, devices) or within its revocation poll interval
(certificates).

Output is an aligned table by default and JSON with --json. Exit status
is 0 on success, 1 on failure and 2 on a usage error. Destructive commands
ask for confirmation and, when stdin is not a terminal, refuse to run
without --force.
`,
		CobraFunc: func(cmd *cobra.Command) {
			newCLI(defaultStreams()).attach(cmd)
		},
	})
}

// cli holds the flags shared by every subcommand and the streams they use.
type cli struct {
	io *streams

	configFile string
	adapter    string
	jsonOut    bool
}

func newCLI(s *streams) *cli { return &cli{io: s} }

// attach turns root into the `msgbroker` command with every subcommand.
func (c *cli) attach(root *cobra.Command) {
	pf := root.PersistentFlags()
	pf.StringVarP(&c.configFile, "config", "c", "", "Configuration file (default: ./Caddyfile)")
	pf.StringVarP(&c.adapter, "adapter", "a", "", "Name of config adapter to apply")
	pf.BoolVar(&c.jsonOut, "json", false, "Print JSON instead of tables")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return c.report(cmd, usageError(err))
	})
	root.SetOut(c.io.out)
	root.SetErr(c.io.err)
	c.group(root)
	root.AddCommand(c.userCommand(), c.certCommand(), c.messageCommand(), c.statsCommand(),
		c.migrateCommand(), c.keysCommand(), c.deviceCommand())
}

// group makes cmd a command that only holds subcommands: without one, or
// with an unknown one, it prints its help and fails with a usage error.
func (c *cli) group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			cmd.SetOut(c.io.err)
			_ = cmd.Help()
			return c.report(cmd, usageErrorf("%s needs a subcommand", cmd.CommandPath()))
		}
		return c.report(cmd, usageErrorf("unknown command %q for %s", args[0], cmd.CommandPath()))
	}
	return cmd
}

// run adapts an action to cobra, reporting its error with the right exit
// code.
func (c *cli) run(action func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		return c.report(cmd, action(cmd, args))
	}
}

// args checks the number of positional arguments, as a usage error.
func (c *cli) args(minArgs, maxArgs int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		var err error
		switch {
		case len(args) < minArgs:
			err = usageErrorf("%s needs %d argument(s), got %d", cmd.CommandPath(), minArgs, len(args))
		case len(args) > maxArgs:
			err = usageErrorf("%s takes at most %d argument(s), got %d: %s", cmd.CommandPath(), maxArgs, len(args), strings.Join(args, " "))
		}
		return c.report(cmd, err)
	}
}

// forceFlag adds --force (-f), with which a destructive command runs
// without asking for confirmation (see confirm).
func forceFlag(cmd *cobra.Command, force *bool) {
	cmd.Flags().BoolVarP(force, "force", "f", false, "Do not ask for confirmation")
}

// exitError is an error with the exit status the command ends with.
type exitError struct {
	code int
	err  error
	// caddy is the caddycmd error that makes caddycmd.Main exit with code;
	// nil for status 1, which Main uses for any other error.
	caddy error
}

func (e *exitError) Error() string { return e.err.Error() }

// Unwrap exposes the caddycmd error so that caddycmd.Main finds the exit
// code in the chain.
func (e *exitError) Unwrap() error { return e.caddy }

// usageError marks err as a usage error (exit status 2).
func usageError(err error) error {
	return &exitError{code: caddy.ExitCodeForceQuit, err: err}
}

func usageErrorf(format string, args ...any) error {
	return usageError(fmt.Errorf(format, args...))
}

// exitCode maps an error to the exit status: usage errors and invalid
// input (apperr.Invalid) are 2, everything else 1.
func exitCode(err error) int {
	var e *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &e):
		return e.code
	case apperr.KindOf(err) == apperr.Invalid:
		return 2
	default:
		return 1
	}
}

// report prints err and returns the error that makes the process exit with
// the matching status; nil stays nil. Cobra's own printing is silenced so
// the message appears once, on stderr.
func (c *cli) report(cmd *cobra.Command, err error) error {
	if err == nil {
		return nil
	}
	var done *exitError
	if errors.As(err, &done) && done.caddy != nil {
		return err // already reported
	}
	code := exitCode(err)
	fmt.Fprintf(c.io.err, "Error: %s\n", message(err))
	if code == 2 {
		fmt.Fprintf(c.io.err, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	cmd.SilenceErrors = true
	cmd.Root().SilenceErrors = true
	out := &exitError{code: code, err: err}
	if code > 1 {
		// caddycmd keeps its exit error type unexported; its cobra
		// wrapper is the way to make one.
		out.caddy = caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return code, nil })(cmd, nil)
	}
	return out
}

// message is the text shown for err: the client-safe message of a domain
// error, the error itself otherwise.
func message(err error) string {
	var e *exitError
	if errors.As(err, &e) {
		err = e.err
	}
	if ae, ok := apperr.As(err); ok {
		return ae.Message
	}
	return err.Error()
}

// open loads the config and opens the broker's services: only the
// database, or with withKeys also the keyring, the phone hasher and the
// certificate issuer. It also makes sure the schema is current: pending
// migrations are applied when the config's auto_migrate is on (the SQLite
// default), as the gateway would at start; otherwise they are an error
// pointing at 'migrate up'.
func (c *cli) open(ctx context.Context, withKeys bool) (*msgbroker.Services, error) {
	off, err := c.openDatabase(ctx, withKeys)
	if err != nil {
		return nil, err
	}
	if err := c.ensureSchema(ctx, off); err != nil {
		c.closeOffline(off)
		return nil, err
	}
	return off, nil
}

// openDatabase opens the services without looking at the schema, for the
// migrate commands.
func (c *cli) openDatabase(ctx context.Context, withKeys bool) (*msgbroker.Services, error) {
	cfgJSON, err := c.loadConfig()
	if err != nil {
		return nil, err
	}
	return msgbroker.OpenServices(ctx, cfgJSON, msgbroker.OpenOptions{DatabaseOnly: !withKeys, Logger: caddy.Log()})
}

// loadConfig returns the adapted config JSON.
func (c *cli) loadConfig() ([]byte, error) {
	cfgJSON, _, _, err := caddycmd.LoadConfig(c.configFile, c.adapter)
	if err != nil {
		return nil, fmt.Errorf("loading config: %w", err)
	}
	if len(cfgJSON) == 0 {
		return nil, usageErrorf("no config: pass --config <Caddyfile>, or run in the directory of your Caddyfile")
	}
	return cfgJSON, nil
}

func (c *cli) ensureSchema(ctx context.Context, off *msgbroker.Services) error {
	states, err := storage.MigrationStatus(ctx, off.Store.DB)
	if err != nil {
		return err
	}
	pending := 0
	for _, s := range states {
		if !s.Applied {
			pending++
		}
	}
	if pending == 0 {
		return nil
	}
	if !off.AutoMigrate {
		return fmt.Errorf("the database schema has %d pending migration(s); apply them with 'caddy msgbroker migrate up'", pending)
	}
	applied, err := storage.Migrate(ctx, off.Store.DB)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.io.err, "Applied migrations (auto_migrate): %s\n", strings.Join(applied, ", "))
	return nil
}

// actor is who the audit log names for the CLI's actions: "cli", from
// the local account that ran it.
func actor() broker.Actor {
	where := "local"
	if u, err := user.Current(); err == nil && u.Username != "" {
		where += ":" + u.Username
	}
	if len(where) > 64 {
		where = where[:64]
	}
	return broker.Actor{Name: "cli", RemoteAddr: where}
}

// commandContext is the context of a command: cancelled by SIGINT or
// SIGTERM, so long commands stop between two consistent steps.
func commandContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return signalContext(ctx)
}

// offlineAction is the work of a command on the broker's opened services,
// under the command's context.
type offlineAction func(ctx context.Context, off *msgbroker.Services) error

// withOffline runs fn on the services that open provides (the keyring,
// hasher and issuer only with withKeys), so that every command gets the
// same signal handling, schema check and closing.
func (c *cli) withOffline(cmd *cobra.Command, withKeys bool, fn offlineAction) error {
	return c.withOpened(cmd, func(ctx context.Context) (*msgbroker.Services, error) {
		return c.open(ctx, withKeys)
	}, fn)
}

// withDatabase runs fn on the database alone, without the schema check of
// withOffline: the migrate commands are what makes the schema current.
func (c *cli) withDatabase(cmd *cobra.Command, fn offlineAction) error {
	return c.withOpened(cmd, func(ctx context.Context) (*msgbroker.Services, error) {
		return c.openDatabase(ctx, false)
	}, fn)
}

// withOpened opens the services under the command's context, runs fn and
// closes them again before the context is cancelled.
func (c *cli) withOpened(cmd *cobra.Command, open func(context.Context) (*msgbroker.Services, error), fn offlineAction) error {
	ctx, cancel := commandContext(cmd)
	defer cancel()
	off, err := open(ctx)
	if err != nil {
		return err
	}
	defer c.closeOffline(off)
	return fn(ctx, off)
}

// closeOffline releases the services; a failure there does not change the
// outcome of the command.
func (c *cli) closeOffline(off *msgbroker.Services) {
	if err := off.Close(); err != nil {
		fmt.Fprintf(c.io.err, "warning: closing the database: %v\n", err)
	}
}
