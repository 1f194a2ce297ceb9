package broker

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"

	"github.com/msgbroker/caddy-msgbroker/internal/apperr"
)

// cursorSealer makes keyset-paging cursors clients cannot forge: the last
// id of a page with an HMAC over it, the list it belongs to (label) and
// the caller and filter it was made for (scope), so a cursor cannot
// continue another list, another caller's list or another query. The
// portal's message list and the admin API's certificate list share it.
type cursorSealer struct {
	key   []byte
	label string
}

var errBadCursor = apperr.New(apperr.Invalid, "invalid_cursor", "the cursor is not one this list returned; start again without it")

// seal encodes base64url(id (8 bytes) || HMAC-SHA-256[:16]).
func (c cursorSealer) seal(afterID int64, scope []byte) string {
	buf := binary.BigEndian.AppendUint64(nil, uint64(afterID))
	return base64.RawURLEncoding.EncodeToString(append(buf, c.mac(buf, scope)...))
}

// open checks a cursor and returns its id.
func (c cursorSealer) open(cursor string, scope []byte) (int64, error) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) != 8+16 {
		return 0, errBadCursor
	}
	if !hmac.Equal(raw[8:], c.mac(raw[:8], scope)) {
		return 0, errBadCursor
	}
	id := int64(binary.BigEndian.Uint64(raw[:8]))
	if id <= 0 {
		return 0, errBadCursor
	}
	return id, nil
}

func (c cursorSealer) mac(id, scope []byte) []byte {
	mac := hmac.New(sha256.New, c.key)
	mac.Write([]byte(c.label))
	mac.Write([]byte{0})
	mac.Write(id)
	mac.Write(scope)
	return mac.Sum(nil)[:16]
}
