package cli

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// opening is how much of the broker a command opens.
type opening int

const (
	// schemaAsIs opens the database without looking at its schema: the
	// migrate commands are what makes the schema current.
	schemaAsIs opening = iota
	// database opens the database with its schema current.
	database
	// withKeys also opens the keyring, the phone hasher and the
	// certificate issuer.
	withKeys
)

// services are the parts of the broker the commands use: the broker's
// Services, plus the keyring administration only the CLI performs.
type services struct {
	*msgbroker.Services
	Keys *broker.Keys // Services.Keys() as opened; nil unless opened withKeys
}

// withServices runs the work of a command: it opens the broker's services
// from the config, under a context that SIGINT and SIGTERM cancel so long
// commands stop between two consistent steps, runs fn, closes them and
// turns the outcome into the exit status (see exit). It is the only
// code that opens the broker's services.
func withServices(fl caddycmd.Flags, what opening, fn func(ctx context.Context, out *console, svc *services) error) (int, error) {
	ctx, cancel := signalContext(context.Background())
	defer cancel()
	off, err := openServices(ctx, fl, what)
	if err != nil {
		return exit(err)
	}
	svc := &services{Services: off, Keys: off.Keys()}
	err = fn(ctx, newConsole(fl), svc)
	if cerr := off.Close(); cerr != nil {
		fmt.Fprintf(stdio.err, "warning: closing the database: %v\n", cerr)
	}
	return exit(err)
}

// openServices loads the config and opens what the command needs, saying
// on stderr which database it opened, so that an operator never works on
// another one unawares. Unless asked for the schema as it
// is, it also makes sure the schema is current: pending migrations are
// applied when the config's auto_migrate is on (the SQLite default), as
// the gateway would at start; otherwise they are an error pointing at
// 'migrate up'.
func openServices(ctx context.Context, fl caddycmd.Flags, what opening) (*msgbroker.Services, error) {
	cfgJSON, configFile, _, err := caddycmd.LoadConfig(fl.String("config"), fl.String("adapter"))
	if err != nil {
		return nil, fmt.Errorf("loading config: %w", err)
	}
	if len(cfgJSON) == 0 {
		return nil, usagef("no config: pass --config <Caddyfile>, or run in the directory of your Caddyfile")
	}
	// Relative paths in the config mean its directory: an operator
	// passing --config from elsewhere must reach the same database and
	// keys as the gateway started beside it.
	configDir, err := filepath.Abs(filepath.Dir(configFile))
	if err != nil {
		return nil, err
	}
	off, err := msgbroker.OpenServices(ctx, cfgJSON, msgbroker.OpenOptions{
		DatabaseOnly: what != withKeys,
		Logger:       caddy.Log(),
		BaseDir:      configDir,
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdio.err, "Database: %s\n", off.Database)
	if what == schemaAsIs {
		return off, nil
	}
	if err := ensureSchema(ctx, off); err != nil {
		_ = off.Close()
		return nil, err
	}
	return off, nil
}

func ensureSchema(ctx context.Context, off *msgbroker.Services) error {
	pending, err := storage.PendingMigrations(ctx, off.Store.DB)
	if err != nil {
		return err
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
	fmt.Fprintf(stdio.err, "Applied migrations (auto_migrate): %s\n", strings.Join(applied, ", "))
	return nil
}
