package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/storage"
)

func migrateCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "migrate", Short: "Applies, rolls back and lists database migrations"})
	down := &cobra.Command{
		Use:   "down [N] [--force]",
		Short: "Rolls back the last N migrations (default 1), dropping what they created",
		Args:  nargs(0, 1),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdMigrateDown),
	}
	forceFlag(down)
	cmd.AddCommand(&cobra.Command{
		Use:   "up",
		Short: "Applies every pending migration",
		Args:  nargs(0, 0),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdMigrateUp),
	}, down, &cobra.Command{
		Use:   "status",
		Short: "Lists migrations and whether they are applied",
		Args:  nargs(0, 0),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdMigrateStatus),
	})
	return cmd
}

func cmdMigrateUp(fl caddycmd.Flags) (int, error) {
	return withServices(fl, schemaAsIs, func(ctx context.Context, out *console, svc *services) error {
		applied, err := storage.Migrate(ctx, svc.Store.DB)
		if err != nil {
			return err
		}
		return out.printMigrated("applied", "Applied", "The database schema is up to date.", applied)
	})
}

func cmdMigrateDown(fl caddycmd.Flags) (int, error) {
	steps := 1
	if fl.NArg() == 1 {
		n, err := strconv.Atoi(fl.Arg(0))
		if err != nil || n < 1 {
			return exit(usagef("N must be a positive number, not %q", fl.Arg(0)))
		}
		steps = n
	}
	return withServices(fl, schemaAsIs, func(ctx context.Context, out *console, svc *services) error {
		question := fmt.Sprintf("Roll back the last %d migration(s)? Tables and columns they created are dropped with their data.", steps)
		if err := out.confirm(fl.Bool("force"), question); err != nil {
			return err
		}
		rolledBack, err := storage.MigrateDown(ctx, svc.Store.DB, steps)
		if err != nil {
			return err
		}
		return out.printMigrated("rolled_back", "Rolled back", "No migration is applied; nothing to roll back.", rolledBack)
	})
}

func cmdMigrateStatus(fl caddycmd.Flags) (int, error) {
	return withServices(fl, schemaAsIs, func(ctx context.Context, out *console, svc *services) error {
		states, err := storage.MigrationStatus(ctx, svc.Store.DB)
		if err != nil {
			return err
		}
		if out.jsonOut {
			type state struct {
				Name      string     `json:"name"`
				Status    string     `json:"status"`
				AppliedAt *time.Time `json:"applied_at"`
			}
			listed := jsonList(states, func(s *storage.MigrationState) state {
				st := state{Name: s.Name, Status: migrationStatus(*s)}
				if s.Applied {
					st.AppliedAt = &s.AppliedAt
				}
				return st
			})
			return out.printJSON(listed)
		}
		rows := make([][]string, 0, len(states))
		pending := 0
		for _, s := range states {
			if !s.Applied {
				pending++
			}
			rows = append(rows, []string{s.Name, migrationStatus(s), timeText(s.AppliedAt)})
		}
		if err := out.table([]string{"MIGRATION", "STATUS", "APPLIED AT"}, rows); err != nil {
			return err
		}
		if pending > 0 {
			fmt.Fprintf(out.io.err, "%d pending; apply with 'caddy msgbroker migrate up'.\n", pending)
		}
		return nil
	})
}

// printMigrated reports the migrations that up or down went through: as
// {jsonKey: names} with --json, otherwise a line "verb name" each, or the
// sentence none when there were none.
func (c *console) printMigrated(jsonKey, verb, none string, names []string) error {
	if c.jsonOut {
		return c.printJSON(map[string][]string{jsonKey: nonNil(names)})
	}
	if len(names) == 0 {
		c.printf("%s\n", none)
	}
	for _, name := range names {
		c.printf("%s %s\n", verb, name)
	}
	return nil
}

func migrationStatus(s storage.MigrationState) string {
	switch {
	case s.Unknown:
		return "applied (unknown to this binary)"
	case s.Applied:
		return "applied"
	default:
		return "pending"
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
