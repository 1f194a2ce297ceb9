package msgbroker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
)

// keyringWatchInterval is how often the keyring file is checked for a
// change. `caddy msgbroker keys rotate` rewrites the file; every node
// running from it starts encrypting with the new key within this interval,
// without a reload.
const keyringWatchInterval = 2 * time.Second

// watchKeyring reloads the keyring when its file changes. A file that
// fails to load is reported and the keys in memory stay in use: a
// half-edited keyring must not stop the gateway.
func (a *App) watchKeyring(ctx context.Context, interval time.Duration) {
	watch := keyring.NewFileWatch(a.secrets.keyringPath)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		kr, err := watch.Changed()
		if err != nil {
			a.logger.Error("keyring file changed but does not load; keeping the keys in memory", zap.String("path", watch.Path()), zap.Error(err))
			continue
		}
		if kr == nil {
			continue
		}
		a.keys.Store(kr)
		a.logger.Info("keyring reloaded", zap.String("path", watch.Path()), zap.String("primary_key", kr.PrimaryID()), zap.Int("keys", len(kr.IDs())))
	}
}
