package certstore

import (
	"context"
	"errors"

	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// Unsealed is the key id KeyUsage counts values under that were stored
// without encryption.
const Unsealed = ""

// KeyUsage counts the stored values per id of the keyring key that sealed
// them (Unsealed for values stored as given), so that a key still sealing
// a value is not retired.
func KeyUsage(ctx context.Context, repo *storage.CertDataRepo) (map[string]int64, error) {
	rows, err := repo.Values(ctx)
	if err != nil {
		return nil, err
	}
	usage := map[string]int64{}
	for _, row := range rows {
		id, err := keyring.KeyID(row.Value)
		if err != nil {
			id = Unsealed
		}
		usage[id]++
	}
	return usage, nil
}

// ResealResult says what Reseal did.
type ResealResult struct {
	Moved   int // re-encrypted under the primary key
	Skipped int // not sealed, under a key kr does not have, or altered: left as they are
}

// Reseal re-encrypts every sealed value whose key is not kr's primary
// with the primary, bound to its key as before. A value that changed
// while it was re-encrypted is left to its writer, who sealed it with a
// current key.
func Reseal(ctx context.Context, repo *storage.CertDataRepo, kr *keyring.Keyring) (ResealResult, error) {
	var res ResealResult
	rows, err := repo.Values(ctx)
	if err != nil {
		return res, err
	}
	primary := kr.PrimaryID()
	for _, row := range rows {
		id, err := keyring.KeyID(row.Value)
		if err != nil || !kr.Has(id) {
			res.Skipped++
			continue
		}
		if id == primary {
			continue
		}
		moved, err := reseal(ctx, repo, kr, row)
		switch {
		case errors.Is(err, keyring.ErrDecrypt):
			res.Skipped++ // altered: left for Load to report
		case err != nil:
			return res, err
		case moved:
			res.Moved++
		}
	}
	return res, nil
}

func reseal(ctx context.Context, repo *storage.CertDataRepo, kr *keyring.Keyring, row storage.CertDatum) (bool, error) {
	plain, err := kr.Decrypt(row.Value, AssociatedData(row.Key))
	if err != nil {
		return false, err
	}
	sealed, err := kr.Encrypt(plain, AssociatedData(row.Key))
	if err != nil {
		return false, err
	}
	return repo.ReplaceValue(ctx, row.Key, row.Value, sealed)
}
