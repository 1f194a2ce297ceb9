package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func (c *cli) migrateCommand() *cobra.Command {
	cmd := c.group(&cobra.Command{Use: "migrate", Short: "Applies, rolls back and lists database migrations"})

	up := &cobra.Command{
		Use:   "up",
		Short: "Applies every pending migration",
		Args:  c.args(0, 0),
	}
	up.RunE = c.run(func(cmd *cobra.Command, _ []string) error {
		return c.withDatabase(cmd, func(ctx context.Context, off *msgbroker.Services) error {
			applied, err := storage.Migrate(ctx, off.Store.DB)
			if err != nil {
				return err
			}
			return c.printMigrated("applied", "Applied", "The database schema is up to date.", applied)
		})
	})

	var force bool
	down := &cobra.Command{
		Use:   "down [N] [--force]",
		Short: "Rolls back the last N migrations (default 1), dropping what they created",
		Args:  c.args(0, 1),
	}
	forceFlag(down, &force)
	down.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		steps := 1
		if len(args) == 1 {
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 1 {
				return usageErrorf("N must be a positive number, not %q", args[0])
			}
			steps = n
		}
		return c.withDatabase(cmd, func(ctx context.Context, off *msgbroker.Services) error {
			question := fmt.Sprintf("Roll back the last %d migration(s)? Tables and columns they created are dropped with their data.", steps)
			if err := c.confirm(force, question); err != nil {
				return err
			}
			rolledBack, err := storage.MigrateDown(ctx, off.Store.DB, steps)
			if err != nil {
				return err
			}
			return c.printMigrated("rolled_back", "Rolled back", "No migration is applied; nothing to roll back.", rolledBack)
		})
	})

	status := &cobra.Command{
		Use:   "status",
		Short: "Lists migrations and whether they are applied",
		Args:  c.args(0, 0),
	}
	status.RunE = c.run(func(cmd *cobra.Command, _ []string) error {
		return c.withDatabase(cmd, func(ctx context.Context, off *msgbroker.Services) error {
			states, err := storage.MigrationStatus(ctx, off.Store.DB)
			if err != nil {
				return err
			}
			if c.jsonOut {
				type state struct {
					Name      string     `json:"name"`
					Status    string     `json:"status"`
					AppliedAt *time.Time `json:"applied_at"`
				}
				out := make([]state, 0, len(states))
				for _, s := range states {
					st := state{Name: s.Name, Status: migrationStatus(s)}
					if s.Applied {
						st.AppliedAt = &s.AppliedAt
					}
					out = append(out, st)
				}
				return c.printJSON(out)
			}
			rows := make([][]string, 0, len(states))
			pending := 0
			for _, s := range states {
				if !s.Applied {
					pending++
				}
				rows = append(rows, []string{s.Name, migrationStatus(s), timeText(s.AppliedAt)})
			}
			if err := c.table([]string{"MIGRATION", "STATUS", "APPLIED AT"}, rows); err != nil {
				return err
			}
			if pending > 0 {
				fmt.Fprintf(c.io.err, "%d pending; apply with 'caddy msgbroker migrate up'.\n", pending)
			}
			return nil
		})
	})

	cmd.AddCommand(up, down, status)
	return cmd
}

// printMigrated reports the migrations that up or down went through: as
// {jsonKey: names} with --json, otherwise a line "verb name" each, or the
// sentence none when there were none.
func (c *cli) printMigrated(jsonKey, verb, none string, names []string) error {
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
