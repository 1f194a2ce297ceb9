package broker

import (
	"context"
	"fmt"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
	"github.com/msgbroker/caddy-msgbroker/internal/keyring"
	"github.com/msgbroker/caddy-msgbroker/storage"
)

// ActionDecrypt is the audit action of a body decryption.
const ActionDecrypt = "message.decrypt"

// DecryptBody decrypts the body of m for actor and writes the attempt,
// successful or not, to the audit log: action message.decrypt, the message
// id as target, "channel: <channel>" (portal, cli, admin …) and any
// failure as details. A body whose decryption cannot be audited is
// withheld. Every place that shows a body calls this; the key rotation
// (Keys.Reencrypt), which decrypts only to seal again, audits its runs
// instead.
func DecryptBody(ctx context.Context, store *storage.Store, kr *keyring.Keyring, actor Actor, channel string, m *storage.Message) (string, error) {
	plain, err := decryptBody(kr, m)
	outcome, details := storage.AuditSuccess, "channel: "+channel
	if err != nil {
		outcome = storage.AuditFailure
		details += "; " + decryptFailure(err, m)
	}
	if aerr := Audit(ctx, store, actor, ActionDecrypt, m.MessageID, outcome, details); aerr != nil {
		return "", fmt.Errorf("auditing decryption of %s, so the body is withheld: %w", m.MessageID, aerr)
	}
	return plain, err
}

func decryptBody(kr *keyring.Keyring, m *storage.Message) (string, error) {
	if kr == nil {
		return "", apperr.New(apperr.Unavailable, "keys_unavailable", "the encryption keys are not loaded")
	}
	plain, err := kr.Decrypt(m.BodyEncrypted, []byte(m.MessageID))
	if err != nil {
		return "", fmt.Errorf("decrypting message %s (key %s): %w", m.MessageID, m.EncryptionKeyID, err)
	}
	return string(plain), nil
}

// decryptFailure is what the audit log keeps of a failed decryption.
func decryptFailure(err error, m *storage.Message) string {
	if _, ok := apperr.As(err); ok {
		return errorSummary(err)
	}
	return "the body does not decrypt with the configured keyring (key " + m.EncryptionKeyID + ")"
}
