package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/msgbroker/caddy-msgbroker/internal/broker"
)

func keysCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "keys", Short: "Rotates the keys that encrypt message bodies"})

	list := &cobra.Command{
		Use:   "list",
		Short: "Lists the keyring's keys and how many bodies each encrypts",
		Args:  nargs(0, 0),
		RunE:  caddycmd.WrapCommandFuncForCobra(cmdKeysList),
	}

	rotate := &cobra.Command{
		Use:   "rotate [--batch-size N] [--max-batches N] [--new-key] [--reload]",
		Short: "Adds a key and re-encrypts every body with it",
		Long: `Adds a new key to the keyring file (it becomes the primary key, which
encrypts new bodies) and re-encrypts every stored body with it, in batches,
and the values of Caddy's storage in the database (storage msgbroker_sql
with encryption_key_file).

The work is resumable: each body is rewritten in one statement, so an
interruption (Ctrl-C, a crash, --max-batches) leaves every body readable,
and running 'keys rotate' again continues where it stopped instead of
adding yet another key (unless --new-key). When nothing is left under older
keys, they can be removed with 'keys retire'.

Running gateways watch the keyring file and switch to the new key
within 2 seconds, without a reload; --reload makes the gateway at the
config's admin address load it at once, before any body is re-encrypted.
Nodes of a cluster must share the keyring file's contents: copy it to the
other nodes before re-encrypting.`,
		Args: nargs(0, 0),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdKeysRotate),
	}
	f := rotate.Flags()
	f.Int("batch-size", broker.DefaultReencryptBatch, "Bodies per batch")
	f.Int("max-batches", 0, "Stop after this many batches (0: run to the end); run again to continue")
	f.Bool("new-key", false, "Add a key even if an earlier rotation is unfinished")
	f.Bool("reload", false, "Reload the running gateway at the config's admin address after adding the key")

	retire := &cobra.Command{
		Use:   "retire KEY_ID [--force]",
		Short: "Removes a key no body uses any more from the keyring",
		Long: `Removes a key from the keyring file. It refuses the primary key and any key
that still encrypts a body ('keys rotate' re-encrypts them). Running
gateways see the keyring file change within 2 seconds, without a reload.`,
		Args: nargs(1, 1),
		RunE: caddycmd.WrapCommandFuncForCobra(cmdKeysRetire),
	}
	forceFlag(retire)

	cmd.AddCommand(list, rotate, retire)
	return cmd
}

func cmdKeysList(fl caddycmd.Flags) (int, error) {
	return withServices(fl, withKeys, func(ctx context.Context, out *console, svc *services) error {
		usage, unknown, err := svc.Keys.Usage(ctx)
		if err != nil {
			return err
		}
		if out.jsonOut {
			return out.printJSON(map[string]any{"keyring": svc.Keys.Path, "keys": usage, "messages_under_unknown_keys": unknown})
		}
		rows := make([][]string, 0, len(usage))
		for _, u := range usage {
			primary := ""
			if u.Primary {
				primary = "primary"
			}
			rows = append(rows, []string{u.ID, primary, count(u.Messages)})
		}
		if err := out.table([]string{"KEY ID", "ROLE", "MESSAGES"}, rows); err != nil {
			return err
		}
		for _, u := range usage {
			if u.StorageValues > 0 {
				out.printf("Key %s also seals %s of Caddy's storage (certificates, CA keys).\n",
					u.ID, plural(u.StorageValues, "value", "values"))
			}
		}
		if unknown > 0 {
			fmt.Fprintf(out.io.err, "warning: %s under keys this keyring does not hold and cannot be decrypted\n",
				plural(unknown, "message body is", "message bodies are"))
		}
		return nil
	})
}

func cmdKeysRotate(fl caddycmd.Flags) (int, error) {
	opts := broker.ReencryptOptions{BatchSize: fl.Int("batch-size"), MaxBatches: fl.Int("max-batches")}
	if opts.BatchSize < 1 {
		return exit(usagef("--batch-size must be at least 1"))
	}
	if opts.MaxBatches < 0 {
		return exit(usagef("--max-batches must not be negative"))
	}
	return withServices(fl, withKeys, func(ctx context.Context, out *console, svc *services) error {
		keys := svc.Keys
		pending, err := keys.Pending(ctx)
		if err != nil {
			return err
		}
		added := ""
		if pending == 0 || fl.Bool("new-key") {
			if added, err = keys.Add(ctx, actor()); err != nil {
				return err
			}
			fmt.Fprintf(out.io.err, "Added key %s to %s; it encrypts from now on.\n", added, keys.Path)
		} else {
			fmt.Fprintf(out.io.err, "Resuming: %s with key %s.\n", plural(pending,
				"body is still under an older key; re-encrypting it",
				"bodies are still under older keys; re-encrypting them"), keys.Keyring.PrimaryID())
		}
		// Reloading on a resumed run too lets an operator whose first
		// reload failed fix it and simply run the command again.
		if fl.Bool("reload") {
			addr, err := reloadGateway(fl)
			if err != nil {
				return fmt.Errorf("the gateway did not reload, so no body was re-encrypted; fix this and run 'keys rotate --reload' again: %w", err)
			}
			// The address says which gateway: the config's admin address,
			// which a wrong environment can point at another one.
			fmt.Fprintf(out.io.err, "Reloaded the running gateway at %s.\n", addr)
		} else if added != "" {
			fmt.Fprintln(out.io.err, "Running gateways switch to it within 2 seconds, without a reload.")
		}

		bar := &progress{w: out.io.err, terminal: out.io.stderrTerminal(), label: "re-encrypting"}
		opts.Progress = bar.update
		res, err := keys.Reencrypt(ctx, actor(), opts)
		bar.end()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted after %s; every body is still readable; run 'keys rotate' again to resume", bodies(res.Reencrypted))
			}
			return fmt.Errorf("after %s: %w; run 'keys rotate' again to resume", bodies(res.Reencrypted), err)
		}
		if out.jsonOut {
			return out.printJSON(struct {
				AddedKey string `json:"added_key,omitempty"`
				broker.ReencryptResult
			}{added, res})
		}
		out.printf("Re-encrypted %s with key %s.\n", bodies(res.Reencrypted), res.KeyID)
		if res.StorageValues > 0 {
			out.printf("Re-encrypted %s of Caddy's storage (certificates, CA keys) with key %s.\n",
				plural(int64(res.StorageValues), "value", "values"), res.KeyID)
		}
		if res.Remaining > 0 {
			out.printf("%s; run 'caddy msgbroker keys rotate' again to continue.\n",
				plural(res.Remaining, "body remains under an older key", "bodies remain under older keys"))
			return nil
		}
		for _, id := range keys.Keyring.IDs() {
			if id != res.KeyID {
				out.printf("Key %s encrypts no body any more; remove it with 'caddy msgbroker keys retire %s'.\n", id, id)
			}
		}
		return nil
	})
}

func bodies(n int64) string { return plural(n, "body", "bodies") }

// reloadGateway makes the gateway at the config's admin address load the
// config again, as `caddy reload --force` does, so it reads the keyring
// file anew.
func reloadGateway(fl caddycmd.Flags) (string, error) {
	cfgJSON, configFile, adapter, err := caddycmd.LoadConfig(fl.String("config"), fl.String("adapter"))
	if err != nil {
		return "", err
	}
	addr, err := caddycmd.DetermineAdminAPIAddress("", cfgJSON, configFile, adapter)
	if err != nil {
		return "", err
	}
	headers := make(http.Header)
	headers.Set("Cache-Control", "must-revalidate")
	headers.Set("Caddy-Config-Source-File", configFile)
	headers.Set("Caddy-Config-Source-Adapter", adapter)
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/load", headers, bytes.NewReader(cfgJSON))
	if err != nil {
		return addr, fmt.Errorf("reloading the gateway at %s: %w", addr, err)
	}
	return addr, resp.Body.Close()
}

func cmdKeysRetire(fl caddycmd.Flags) (int, error) {
	id := fl.Arg(0)
	return withServices(fl, withKeys, func(ctx context.Context, out *console, svc *services) error {
		if err := retireCheck(ctx, svc.Keys, id); err != nil {
			return err
		}
		if err := out.confirm(fl.Bool("force"), fmt.Sprintf("Retire key %s? Its material is deleted from %s.", id, svc.Keys.Path)); err != nil {
			return err
		}
		if err := svc.Keys.Retire(ctx, actor(), id); err != nil {
			return err
		}
		return out.printResult(map[string]string{"retired": id}, "Retired key %s.\n", id)
	})
}

// retireCheck refuses early, before asking, what Retire would refuse, so
// nobody confirms a command that cannot succeed. Retire checks again.
func retireCheck(ctx context.Context, keys *broker.Keys, id string) error {
	if !keys.Keyring.Has(id) || id == keys.Keyring.PrimaryID() {
		return keys.Retire(ctx, actor(), id)
	}
	n, err := keys.Store.Messages.CountByKeyID(ctx, id)
	if err != nil {
		return err
	}
	if n > 0 {
		return keys.Retire(ctx, actor(), id)
	}
	return nil
}
