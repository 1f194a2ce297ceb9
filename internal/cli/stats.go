package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func (c *cli) statsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "Shows message, client and user statistics",
		Args:  c.args(0, 0),
	}
	cmd.RunE = c.run(func(cmd *cobra.Command, _ []string) error {
		return c.withOffline(cmd, false, func(ctx context.Context, off *msgbroker.Services) error {
			s, err := broker.CollectStats(ctx, off.Store, c.io.now())
			if err != nil {
				return err
			}
			if c.jsonOut {
				return c.printJSON(s)
			}
			_, err = fmt.Fprint(c.io.out, statsText(s))
			return err
		})
	})
	return cmd
}

// statsText lays the statistics out as the seed's admin CLI did.
func statsText(s broker.Stats) string {
	var b strings.Builder
	line := func(label string, n int64) { fmt.Fprintf(&b, "  %s: %s\n", label, count(n)) }
	b.WriteString("System Statistics\n")
	b.WriteString(strings.Repeat("=", 50) + "\n\n")
	b.WriteString("Messages:\n")
	line("Total", s.Messages.Total)
	line("Queued", s.Messages.Queued)
	line("Processing", s.Messages.Processing)
	line("Retrying", s.Messages.Retrying)
	line("Delivered", s.Messages.Delivered)
	line("Failed", s.Messages.Failed)
	line("Last 24 hours", s.Messages.Last24h)
	line("Last 7 days", s.Messages.Last7d)
	b.WriteString("\nClients:\n")
	line("Total", s.Clients.Total)
	line("Active", s.Clients.Active)
	line("Revoked", s.Clients.Revoked)
	line("Expired", s.Clients.Expired)
	b.WriteString("\nUsers:\n")
	line("Total", s.Users.Total)
	line("Admins", s.Users.Admins)
	return b.String()
}
