package cli

import (
	"context"
	"fmt"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

func statsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Shows message, client and user statistics",
		Args:  nargs(0, 0),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdStats),
	}
}

func cmdStats(fl caddycmd.Flags) (int, error) {
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		s, err := broker.CollectStats(ctx, svc.Store, out.io.now())
		if err != nil {
			return err
		}
		if out.jsonOut {
			return out.printJSON(s)
		}
		_, err = fmt.Fprint(out.io.out, statsText(s))
		return err
	})
}

// statsText lays the statistics out as the Python admin CLI this one
// replaces did, for operators used to it.
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
