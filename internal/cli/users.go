package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// userJSON is a user as --json prints it; never the password hash.
type userJSON struct {
	ID          int64      `json:"id"`
	Email       string     `json:"email"`
	Role        string     `json:"role"`
	ClientID    *string    `json:"client_id"`
	IsActive    bool       `json:"is_active"`
	LockedUntil *time.Time `json:"locked_until"`
	LastLoginAt *time.Time `json:"last_login_at"`
	CreatedAt   time.Time  `json:"created_at"`
}

func userOut(u *storage.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Role: u.Role, ClientID: u.ClientID, IsActive: u.IsActive,
		LockedUntil: u.LockedUntil, LastLoginAt: u.LastLoginAt, CreatedAt: u.CreatedAt}
}

func usersService(off *msgbroker.Services) *broker.Users {
	return &broker.Users{Store: off.Store, Logger: off.Logger}
}

// withUser runs fn on the user that ref (an id or an email) names, with
// the users service it was looked up through, so that commands acting on
// one user fail alike when it does not exist.
func (c *cli) withUser(cmd *cobra.Command, ref string, fn func(ctx context.Context, svc *broker.Users, u *storage.User) error) error {
	return c.withOffline(cmd, false, func(ctx context.Context, off *msgbroker.Services) error {
		svc := usersService(off)
		u, err := svc.Lookup(ctx, ref)
		if err != nil {
			return err
		}
		return fn(ctx, svc, u)
	})
}

func (c *cli) userCommand() *cobra.Command {
	cmd := c.group(&cobra.Command{Use: "user", Short: "Manages portal users"})

	list := &cobra.Command{
		Use:   "list",
		Short: "Lists users",
		Args:  c.args(0, 0),
	}
	list.RunE = c.run(func(cmd *cobra.Command, _ []string) error {
		return c.withOffline(cmd, false, func(ctx context.Context, off *msgbroker.Services) error {
			users, err := off.Store.Users.List(ctx)
			if err != nil {
				return err
			}
			if c.jsonOut {
				return c.printJSON(jsonList(users, userOut))
			}
			now := c.io.now()
			rows := make([][]string, 0, len(users))
			for _, u := range users {
				status := "active"
				switch {
				case !u.IsActive:
					status = "inactive"
				case u.LockedAt(now):
					status = "locked"
				}
				rows = append(rows, []string{strconv.FormatInt(u.ID, 10), u.Email, u.Role, strPtrText(u.ClientID), status,
					timePtrText(u.LastLoginAt), timeText(u.CreatedAt)})
			}
			return c.table([]string{"ID", "EMAIL", "ROLE", "CLIENT", "STATUS", "LAST LOGIN", "CREATED"}, rows)
		})
	})

	var role, client string
	var passwordStdin bool
	create := &cobra.Command{
		Use:   "create EMAIL [--role admin|user] [--client ID] [--password-stdin]",
		Short: "Creates a user; the password is prompted for twice",
		Long: `Creates an active user. The password (at least 8 characters) is typed twice
without echo, or read from the first line of stdin with --password-stdin.
A user with --client sees only that client's messages in the portal; an
admin sees all.`,
		Example: `  caddy msgbroker user create admin@example.com --role admin
  printf '%s\n' "$PASSWORD" | caddy msgbroker user create ops@example.com --client proxy-1 --password-stdin`,
		Args: c.args(1, 1),
	}
	create.Flags().StringVar(&role, "role", storage.RoleUser, "Role: admin or user")
	create.Flags().StringVar(&client, "client", "", "Client id whose messages a user may see")
	create.Flags().BoolVar(&passwordStdin, "password-stdin", false, "Read the password from stdin")
	create.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		if role != storage.RoleAdmin && role != storage.RoleUser {
			return usageErrorf("--role must be admin or user, not %q", role)
		}
		return c.withOffline(cmd, false, func(ctx context.Context, off *msgbroker.Services) error {
			password, err := c.newPassword(passwordStdin)
			if err != nil {
				return err
			}
			u, err := usersService(off).Create(ctx, actor(), broker.NewUser{Email: args[0], Password: password, Role: role, ClientID: client})
			if err != nil {
				return err
			}
			return c.printResult(userOut(u), "Created user %d %s (%s).\n", u.ID, u.Email, u.Role)
		})
	})

	var force bool
	del := &cobra.Command{
		Use:   "delete ID|EMAIL [--force]",
		Short: "Deletes a user (never the last active admin)",
		Args:  c.args(1, 1),
	}
	forceFlag(del, &force)
	del.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		return c.withUser(cmd, args[0], func(ctx context.Context, svc *broker.Users, u *storage.User) error {
			if err := c.confirm(force, fmt.Sprintf("Delete user %d %s (%s)?", u.ID, u.Email, u.Role)); err != nil {
				return err
			}
			if err := svc.Delete(ctx, actor(), u.ID); err != nil {
				return err
			}
			return c.printResult(map[string]any{"deleted": userOut(u)}, "Deleted user %d %s.\n", u.ID, u.Email)
		})
	})

	var pwStdin bool
	password := &cobra.Command{
		Use:   "password ID|EMAIL [--password-stdin]",
		Short: "Sets a user's password and lifts a lockout",
		Args:  c.args(1, 1),
	}
	password.Flags().BoolVar(&pwStdin, "password-stdin", false, "Read the password from stdin")
	password.RunE = c.run(func(cmd *cobra.Command, args []string) error {
		return c.withUser(cmd, args[0], func(ctx context.Context, svc *broker.Users, u *storage.User) error {
			pw, err := c.newPassword(pwStdin)
			if err != nil {
				return err
			}
			if err := svc.SetPassword(ctx, actor(), u.ID, pw); err != nil {
				return err
			}
			return c.printResult(map[string]any{"password_changed": userOut(u)}, "Changed the password of user %d %s.\n", u.ID, u.Email)
		})
	})

	cmd.AddCommand(list, create, del, password)
	return cmd
}
