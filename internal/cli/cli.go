// Package cli adds the broker's admin CLI to the caddy command as
// `caddy msgbroker …`: users, client certificates, messages, statistics,
// migrations, encryption keys and the built-in device directory.
//
// Each action is a caddycmd.CommandFunc (cmdUserCreate, cmdCertRevoke, …)
// wired with caddycmd.WrapCommandFuncForCobra, as Caddy writes its own
// commands. The actions read the same config as `caddy run` (--config,
// --adapter; an adjacent Caddyfile by default) and open the msgbroker
// app's database, keys and CA storage themselves through withServices,
// since Caddy cannot provision an app outside a running instance. Every
// rule lives in the broker and storage packages, shared with the admin
// API; this package only parses arguments, asks for confirmation and
// prints.
//
// Output is an aligned table (or a short sentence) by default and JSON with
// --json. Exit codes: 0 success, 1 failure, 2 usage error (unknown command
// or flag, bad argument, or a confirmation that cannot be asked).
package cli

import (
	"errors"
	"fmt"
	"os/user"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "msgbroker",
		Usage: "<command> [--config <path>] [--adapter <name>] [--json]",
		Short: "Administers the message broker: users, certificates, messages, keys, migrations",
		Long: `
Administers the message broker configured in the msgbroker global option
of the config that 'caddy run' uses (--config, --adapter; an adjacent
Caddyfile by default). Relative paths in that config are taken from the
config file's directory. The database, keys and CA storage are opened
directly, so a running gateway need not be reachable; it sees every change
at once (users, devices) or within its revocation poll interval
(certificates).

Output is an aligned table by default and JSON with --json; the database
opened is named on stderr. Exit status is 0 on success, 1 on failure and
2 on a usage error. Destructive commands ask for confirmation and, when
stdin is not a terminal, refuse to run without --force.
`,
		CobraFunc: attach,
	})
}

// attach turns cmd into the `msgbroker` command with every subcommand.
func attach(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringP("config", "c", "", "Configuration file (default: ./Caddyfile)")
	pf.StringP("adapter", "a", "", "Name of config adapter to apply")
	pf.Bool("json", false, "Print JSON instead of tables")
	cmd.PersistentPreRun = prepare
	cmd.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageFailure(cmd, usageError{err})
	})
	cmd.SetOut(stdio.out)
	cmd.SetErr(stdio.err)
	group(cmd)
	cmd.AddCommand(userCommand(), certCommand(), messageCommand(), statsCommand(),
		migrateCommand(), keysCommand(), deviceCommand())
}

// invoked is the path of the running command ("caddy msgbroker user
// create"), for the usage hint of its errors.
var invoked string

// prepare runs before every subcommand. The commands report their own
// errors (see exit), so cobra must not print them again.
func prepare(cmd *cobra.Command, _ []string) {
	cmd.SilenceErrors = true
	invoked = cmd.CommandPath()
}

// group makes cmd a command that only holds subcommands: without one, or
// with an unknown one, it fails with a usage error.
func group(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			cmd.SetOut(stdio.err)
			_ = cmd.Help()
			return usageFailure(cmd, usagef("%s needs a subcommand", cmd.CommandPath()))
		}
		return usageFailure(cmd, usagef("unknown command %q for %s", args[0], cmd.CommandPath()))
	}
	return cmd
}

// nargs checks the number of positional arguments, as a usage error.
func nargs(minArgs, maxArgs int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < minArgs:
			return usageFailure(cmd, usagef("%s needs %d argument(s), got %d", cmd.CommandPath(), minArgs, len(args)))
		case len(args) > maxArgs:
			return usageFailure(cmd, usagef("%s takes at most %d argument(s), got %d: %s", cmd.CommandPath(), maxArgs, len(args), strings.Join(args, " ")))
		}
		return nil
	}
}

// usageFailure ends cmd with err, a usage error cobra found before the
// command ran (a bad flag, the wrong number of arguments), exactly as the
// command would have ended with it.
func usageFailure(cmd *cobra.Command, err error) error {
	prepare(cmd, nil)
	return caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) { return exit(err) })(cmd, nil)
}

// forceFlag adds --force (-f), with which a destructive command runs
// without asking for confirmation (see confirm).
func forceFlag(cmd *cobra.Command) {
	cmd.Flags().BoolP("force", "f", false, "Do not ask for confirmation")
}

// usageError is a mistake on the command line.
type usageError struct{ error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exit ends a command with err: it prints it for people, once, and
// returns the status caddycmd exits with. A usage error or invalid input
// (apperr.Invalid) is 2 and gets a hint to --help; it is the operator's to
// fix and is not logged. Any other error is 1 and goes back to caddycmd,
// which logs it as it logs every failed command.
func exit(err error) (int, error) {
	if err == nil {
		return caddy.ExitCodeSuccess, nil
	}
	fmt.Fprintf(stdio.err, "Error: %s\n", message(err))
	if errors.As(err, new(usageError)) || apperr.KindOf(err) == apperr.Invalid {
		fmt.Fprintf(stdio.err, "Run '%s --help' for usage.\n", invoked)
		return caddy.ExitCodeForceQuit, nil
	}
	return caddy.ExitCodeFailedStartup, err
}

// message is the text shown for err: the client-safe message of a domain
// error, the error itself otherwise.
func message(err error) string {
	if ae, ok := apperr.As(err); ok {
		return ae.Message
	}
	return err.Error()
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
