package broker

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/certstore"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// DefaultReencryptBatch is the number of bodies Keys.Reencrypt reads and
// rewrites per batch when ReencryptOptions.BatchSize is zero.
const DefaultReencryptBatch = 500

// Keys rotates the keyring that encrypts message bodies: it adds keys,
// re-encrypts stored bodies under the primary key, and retires keys no
// body uses any more. The keyring file is the source of truth and is
// written before the in-memory keyring changes, so a failed write never
// leaves bodies sealed under a key that exists only in memory.
type Keys struct {
	Store *storage.Store
	// Keyring is the loaded keyring; Add and Retire change it in place.
	Keyring *keyring.Keyring
	// Path is the keyring file.
	Path string
	// Logger reports audit writes that failed (may be nil).
	Logger *zap.Logger
}

// KeyUsage is one key of the keyring and how many bodies it seals.
type KeyUsage struct {
	ID       string `json:"id"`
	Primary  bool   `json:"primary"`
	Messages int64  `json:"messages"`
	// StorageValues counts the values of Caddy's storage in the database
	// (storage msgbroker_sql with encryption_key_file) the key seals.
	StorageValues int64 `json:"storage_values"`
}

// ReencryptOptions tune Keys.Reencrypt.
type ReencryptOptions struct {
	// BatchSize is the number of bodies per batch (default
	// DefaultReencryptBatch, at most storage.MaxPageSize).
	BatchSize int
	// MaxBatches stops after that many batches; 0 means run to the end.
	// A later call continues where this one stopped.
	MaxBatches int
	// Progress, if set, is called after every batch with the bodies
	// re-encrypted so far and the number there were to do at the start.
	Progress func(done, total int64)
}

// ReencryptResult is what a Reencrypt call did.
type ReencryptResult struct {
	// KeyID is the primary key the bodies are now sealed with.
	KeyID string `json:"key_id"`
	// Reencrypted is the number of bodies rewritten by this call.
	Reencrypted int64 `json:"reencrypted"`
	// Remaining is the number of bodies still under older keys.
	Remaining int64 `json:"remaining"`
	// StorageValues is the number of values of Caddy's storage in the
	// database (storage msgbroker_sql with encryption_key_file: the CA's
	// keys, certificates) re-encrypted under the primary key.
	StorageValues int `json:"storage_values"`
}

// Usage lists the keys, oldest first, with the number of bodies each
// seals, and the number of bodies under key ids the keyring does not hold
// (which cannot be decrypted).
func (k *Keys) Usage(ctx context.Context) ([]KeyUsage, int64, error) {
	primary := k.Keyring.PrimaryID()
	var (
		usage []KeyUsage
		known int64
	)
	sealed, err := certstore.KeyUsage(ctx, k.Store.CertData)
	if err != nil {
		return nil, 0, fmt.Errorf("counting storage values per key: %w", err)
	}
	for _, id := range k.Keyring.IDs() {
		n, err := k.Store.Messages.CountByKeyID(ctx, id)
		if err != nil {
			return nil, 0, fmt.Errorf("counting bodies under key %s: %w", id, err)
		}
		known += n
		usage = append(usage, KeyUsage{ID: id, Primary: id == primary, Messages: n, StorageValues: sealed[id]})
	}
	total, err := k.Store.Messages.Total(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("counting messages: %w", err)
	}
	return usage, total - known, nil
}

// Pending returns the number of bodies sealed under a key of the keyring
// other than the primary: the work left for Reencrypt.
func (k *Keys) Pending(ctx context.Context) (int64, error) {
	usage, _, err := k.Usage(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, u := range usage {
		if !u.Primary {
			n += u.Messages
		}
	}
	return n, nil
}

// Add generates a key and makes it the primary key, in the file first and
// then in memory. It returns the new key's id.
func (k *Keys) Add(ctx context.Context, actor Actor) (string, error) {
	id, err := k.add()
	target := id
	if target == "" {
		target = k.Path
	}
	k.audit(ctx, actor, "keys.add", target, err, "")
	return id, err
}

func (k *Keys) add() (string, error) {
	key, err := keyring.Generate("")
	if err != nil {
		return "", err
	}
	onDisk, err := keyring.Load(k.Path)
	if err != nil {
		return "", fmt.Errorf("reading keyring file: %w", err)
	}
	if err := onDisk.Add(key); err != nil {
		return "", err
	}
	if err := keyring.WriteFile(k.Path, onDisk); err != nil {
		return "", fmt.Errorf("writing keyring file: %w", err)
	}
	if err := k.Keyring.Add(key); err != nil {
		return "", err
	}
	return key.ID(), nil
}

// Reencrypt rewrites every body sealed under an older key of the keyring
// with the primary key, in batches of rows in ascending id order. Each row
// is one UPDATE of its envelope and key id, so an interruption at any
// point leaves every body decryptable, and a later call finds only the
// rows still under older keys: the work resumes and never repeats.
//
// Bodies are decrypted only in memory and never logged. The run is
// audited as one entry, not one per body.
func (k *Keys) Reencrypt(ctx context.Context, actor Actor, opts ReencryptOptions) (ReencryptResult, error) {
	res, err := k.reencrypt(ctx, opts)
	details := fmt.Sprintf("re-encrypted %d bodies under key %s; %d remaining", res.Reencrypted, res.KeyID, res.Remaining)
	if err != nil {
		details = fmt.Sprintf("%s after %d bodies", errorSummary(err), res.Reencrypted)
	}
	// A cancelled run has rewritten rows too: record it with a context the
	// cancellation does not reach, or the audit log would miss it.
	if aerr := Audit(context.WithoutCancel(ctx), k.Store, actor, "keys.reencrypt", res.KeyID, outcomeOf(err), details); aerr != nil && k.Logger != nil {
		k.Logger.Error("audit log write failed", zap.String("action", "keys.reencrypt"), zap.Error(aerr))
	}
	return res, err
}

func (k *Keys) reencrypt(ctx context.Context, opts ReencryptOptions) (ReencryptResult, error) {
	res := ReencryptResult{KeyID: k.Keyring.PrimaryID()}
	if res.KeyID == "" {
		return res, errors.New("the keyring has no keys")
	}
	batch := opts.BatchSize
	if batch <= 0 {
		batch = DefaultReencryptBatch
	}
	batch = min(batch, storage.MaxPageSize)
	total, err := k.Pending(ctx)
	if err != nil {
		return res, err
	}
	batches := 0
	for _, id := range k.Keyring.IDs() {
		if id == res.KeyID {
			continue
		}
		var afterID int64
		for {
			if opts.MaxBatches > 0 && batches >= opts.MaxBatches {
				return k.finish(ctx, res)
			}
			rows, err := k.Store.Messages.ListByKeyID(ctx, id, afterID, batch)
			if err != nil {
				return res, err
			}
			if len(rows) == 0 {
				break
			}
			for i := range rows {
				if err := ctx.Err(); err != nil {
					return res, fmt.Errorf("re-encryption interrupted: %w", err)
				}
				if err := k.reencryptRow(ctx, &rows[i], res.KeyID); err != nil {
					return res, err
				}
				res.Reencrypted++
				afterID = rows[i].ID
			}
			batches++
			if opts.Progress != nil {
				opts.Progress(res.Reencrypted, total)
			}
		}
	}
	return k.finish(ctx, res)
}

// finish re-encrypts the values of Caddy's storage in the database (a
// few dozen, so every call does all of them) and fills in what is left to
// do.
func (k *Keys) finish(ctx context.Context, res ReencryptResult) (ReencryptResult, error) {
	resealed, err := certstore.Reseal(ctx, k.Store.CertData, k.Keyring)
	res.StorageValues = resealed.Moved
	if err != nil {
		return res, fmt.Errorf("re-encrypting Caddy's storage: %w", err)
	}
	remaining, err := k.Pending(ctx)
	if err != nil {
		return res, err
	}
	res.Remaining = remaining
	return res, nil
}

func (k *Keys) reencryptRow(ctx context.Context, m *storage.Message, primary string) error {
	ad := []byte(m.MessageID)
	plain, err := k.Keyring.Decrypt(m.BodyEncrypted, ad)
	if err != nil {
		return fmt.Errorf("message %s (key %s) does not decrypt: %w", m.MessageID, m.EncryptionKeyID, err)
	}
	envelope, err := k.Keyring.Encrypt(plain, ad)
	clear(plain)
	if err != nil {
		return fmt.Errorf("re-encrypting message %s: %w", m.MessageID, err)
	}
	if err := k.Store.Messages.UpdateBody(ctx, m.ID, envelope, primary); err != nil {
		return fmt.Errorf("re-encrypting message %s: %w", m.MessageID, err)
	}
	return nil
}

// Retire removes a key from the keyring file and from memory. It refuses
// the primary key and any key that still seals a body, since those bodies
// could never be read again.
func (k *Keys) Retire(ctx context.Context, actor Actor, keyID string) error {
	err := k.retire(ctx, keyID)
	k.audit(ctx, actor, "keys.retire", keyID, err, "")
	return err
}

func (k *Keys) retire(ctx context.Context, keyID string) error {
	if !k.Keyring.Has(keyID) {
		return apperr.New(apperr.NotFound, "key_not_found", "the keyring %s has no key %q", k.Path, keyID)
	}
	if keyID == k.Keyring.PrimaryID() {
		return apperr.New(apperr.Conflict, "key_is_primary", "key %s is the primary key, which encrypts new bodies; rotate first", keyID)
	}
	n, err := k.Store.Messages.CountByKeyID(ctx, keyID)
	if err != nil {
		return fmt.Errorf("counting bodies under key %s: %w", keyID, err)
	}
	if n > 0 {
		bodies := fmt.Sprintf("%d message bodies are", n)
		if n == 1 {
			bodies = "1 message body is"
		}
		return apperr.New(apperr.Conflict, "key_in_use", "%s still encrypted with key %s; re-encrypt with keys rotate first", bodies, keyID)
	}
	usage, err := certstore.KeyUsage(ctx, k.Store.CertData)
	if err != nil {
		return fmt.Errorf("counting storage values under key %s: %w", keyID, err)
	}
	if n := usage[keyID]; n > 0 {
		values := fmt.Sprintf("%d values of Caddy's storage (certificates, CA keys) are", n)
		if n == 1 {
			values = "1 value of Caddy's storage (certificates, CA keys) is"
		}
		return apperr.New(apperr.Conflict, "key_in_use", "%s still encrypted with key %s; re-encrypt with keys rotate first", values, keyID)
	}
	onDisk, err := keyring.Load(k.Path)
	if err != nil {
		return fmt.Errorf("reading keyring file: %w", err)
	}
	if onDisk.Has(keyID) {
		if err := onDisk.Remove(keyID); err != nil {
			return err
		}
		if err := keyring.WriteFile(k.Path, onDisk); err != nil {
			return fmt.Errorf("writing keyring file: %w", err)
		}
	}
	return k.Keyring.Remove(keyID)
}

func (k *Keys) audit(ctx context.Context, actor Actor, action, target string, err error, details string) {
	if err != nil {
		details = errorSummary(err)
	}
	if aerr := Audit(ctx, k.Store, actor, action, target, outcomeOf(err), details); aerr != nil && k.Logger != nil {
		k.Logger.Error("audit log write failed", zap.String("action", action), zap.String("target", target), zap.Error(aerr))
	}
}

func outcomeOf(err error) string {
	if err != nil {
		return storage.AuditFailure
	}
	return storage.AuditSuccess
}
