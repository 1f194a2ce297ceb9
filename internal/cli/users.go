package cli

import (
	"context"
	"fmt"
	"strconv"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

func userCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "user", Short: "Manages portal users"})

	list := &cobra.Command{
		Use:   "list",
		Short: "Lists users",
		Args:  nargs(0, 0),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdUserList),
	}

	create := &cobra.Command{
		Use:   "create EMAIL [--role admin|user] [--client ID] [--password-stdin]",
		Short: "Creates a user; the password is prompted for twice",
		Long: `Creates an active user. The password (at least 8 characters) is typed twice
without echo, or read from the first line of stdin with --password-stdin.
A user with --client sees only that client's messages in the portal; an
admin sees all.`,
		Example: `  caddy msgbroker user create admin@example.com --role admin
  printf '%s\n' "$PASSWORD" | caddy msgbroker user create ops@example.com --client proxy-1 --password-stdin`,
		Args: nargs(1, 1),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdUserCreate),
	}
	create.Flags().String("role", storage.RoleUser, "Role: admin or user")
	create.Flags().String("client", "", "Client id whose messages a user may see")
	passwordStdinFlag(create)

	del := &cobra.Command{
		Use:   "delete ID|EMAIL [--force]",
		Short: "Deletes a user (never the last active admin)",
		Args:  nargs(1, 1),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdUserDelete),
	}
	forceFlag(del)

	password := &cobra.Command{
		Use:   "password ID|EMAIL [--password-stdin]",
		Short: "Sets a user's password and lifts a lockout",
		Args:  nargs(1, 1),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdUserPassword),
	}
	passwordStdinFlag(password)

	cmd.AddCommand(list, create, del, password)
	return cmd
}

func passwordStdinFlag(cmd *cobra.Command) {
	cmd.Flags().Bool("password-stdin", false, "Read the password from stdin")
}

// userJSON is a user as --json prints it; never the password hash.
type userJSON struct {
	ID       int64   `json:"id"`
	Email    string  `json:"email"`
	Role     string  `json:"role"`
	ClientID *string `json:"client_id"`
	IsActive bool    `json:"is_active"`
	// FailedLogins are the wrong passwords since the last login or lock;
	// LockedUntil ends a lockout (past: no longer locked).
	FailedLogins int        `json:"failed_logins"`
	LockedUntil  *time.Time `json:"locked_until"`
	LastLoginAt  *time.Time `json:"last_login_at"`
	CreatedAt    time.Time  `json:"created_at"`
}

func userOut(u *storage.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, Role: u.Role, ClientID: u.ClientID, IsActive: u.IsActive,
		FailedLogins: u.FailedLogins, LockedUntil: u.LockedUntil, LastLoginAt: u.LastLoginAt, CreatedAt: u.CreatedAt}
}

func cmdUserList(fl caddycmd.Flags) (int, error) {
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		users, err := svc.Store.Users.List(ctx)
		if err != nil {
			return err
		}
		if out.jsonOut {
			return out.printJSON(jsonList(users, userOut))
		}
		now := out.io.now()
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
		return out.table([]string{"ID", "EMAIL", "ROLE", "CLIENT", "STATUS", "LAST LOGIN", "CREATED"}, rows)
	})
}

func cmdUserCreate(fl caddycmd.Flags) (int, error) {
	email, role, client := fl.Arg(0), fl.String("role"), fl.String("client")
	if role != storage.RoleAdmin && role != storage.RoleUser {
		return exit(usagef("--role must be admin or user, not %q", role))
	}
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		password, err := out.newPassword(fl.Bool("password-stdin"))
		if err != nil {
			return err
		}
		u, err := svc.Users.Create(ctx, actor(), broker.NewUser{Email: email, Password: password, Role: role, ClientID: client})
		if err != nil {
			return err
		}
		return out.printResult(userOut(u), "Created user %d %s (%s).\n", u.ID, u.Email, u.Role)
	})
}

func cmdUserDelete(fl caddycmd.Flags) (int, error) {
	return withUser(fl, func(ctx context.Context, out *console, svc *services, u *storage.User) error {
		if err := out.confirm(fl.Bool("force"), fmt.Sprintf("Delete user %d %s (%s)?", u.ID, u.Email, u.Role)); err != nil {
			return err
		}
		if err := svc.Users.Delete(ctx, actor(), u.ID); err != nil {
			return err
		}
		return out.printResult(map[string]any{"deleted": userOut(u)}, "Deleted user %d %s.\n", u.ID, u.Email)
	})
}

func cmdUserPassword(fl caddycmd.Flags) (int, error) {
	return withUser(fl, func(ctx context.Context, out *console, svc *services, u *storage.User) error {
		pw, err := out.newPassword(fl.Bool("password-stdin"))
		if err != nil {
			return err
		}
		if err := svc.Users.SetPassword(ctx, actor(), u.ID, pw); err != nil {
			return err
		}
		return out.printResult(map[string]any{"password_changed": userOut(u)}, "Changed the password of user %d %s.\n", u.ID, u.Email)
	})
}

// withUser runs fn on the user that the first argument (an id or an
// email) names, so that commands acting on one user fail alike when it
// does not exist.
func withUser(fl caddycmd.Flags, fn func(ctx context.Context, out *console, svc *services, u *storage.User) error) (int, error) {
	return withServices(fl, database, func(ctx context.Context, out *console, svc *services) error {
		u, err := svc.Users.Lookup(ctx, fl.Arg(0))
		if err != nil {
			return err
		}
		return fn(ctx, out, svc, u)
	})
}
