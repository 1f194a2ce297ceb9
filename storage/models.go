package storage

import (
	"encoding/json"
	"time"

	"github.com/uptrace/bun"
)

// Message statuses. A message is queued at registration, processing while a
// worker delivers it, retrying between failed attempts, and ends delivered
// or failed.
const (
	MessageQueued     = "queued"
	MessageProcessing = "processing"
	MessageRetrying   = "retrying"
	MessageDelivered  = "delivered"
	MessageFailed     = "failed"
)

// Portal user roles.
const (
	RoleAdmin = "admin"
	RoleUser  = "user"
)

// Client certificate roles and statuses.
const (
	ClientRoleProxy  = "proxy"
	ClientRoleWorker = "worker"

	ClientActive  = "active"
	ClientRevoked = "revoked"
)

// Device statuses in the built-in device directory.
const (
	DeviceOn  = "on"
	DeviceOff = "off"
)

// Audit outcomes.
const (
	AuditSuccess = "success"
	AuditFailure = "failure"
	AuditDenied  = "denied"
)

// Message is a row of the messages table. The body is stored only as an
// AES-GCM envelope and the sender only as an HMAC plus a masked display form.
type Message struct {
	bun.BaseModel `bun:"table:messages"`

	// ID is the auto-increment key, used as the keyset pagination cursor.
	ID int64 `bun:"id,pk,autoincrement"`
	// MessageID is the UUID the proxy assigned; registration is idempotent
	// on it.
	MessageID string `bun:"message_id,notnull"`
	ClientID  string `bun:"client_id,notnull"`
	// SenderNumberHash is the hex HMAC-SHA-256 of the E.164 number.
	SenderNumberHash string `bun:"sender_number_hash,notnull"`
	// SenderNumberMasked is the display form, e.g. "+4915****0000".
	SenderNumberMasked string `bun:"sender_number_masked,notnull"`
	// BodyEncrypted is the AES-GCM envelope of the body.
	BodyEncrypted []byte `bun:"body_encrypted,notnull"`
	// EncryptionKeyID names the keyring key that sealed BodyEncrypted.
	EncryptionKeyID string `bun:"encryption_key_id,notnull"`
	// PayloadHash is the hex SHA-256 of the canonical register request, to
	// tell a retried registration from a conflicting one.
	PayloadHash string `bun:"payload_hash,notnull"`
	// Metadata is optional JSON; nil is stored as NULL.
	Metadata    json.RawMessage `bun:"metadata"`
	Status      string          `bun:"status,notnull"`
	Attempts    int             `bun:"attempts,notnull"`
	LastError   *string         `bun:"last_error"`
	QueuedAt    time.Time       `bun:"queued_at,notnull"`
	DeliveredAt *time.Time      `bun:"delivered_at"`
	FailedAt    *time.Time      `bun:"failed_at"`
	CreatedAt   time.Time       `bun:"created_at,notnull"`
	UpdatedAt   time.Time       `bun:"updated_at,notnull"`
}

// User is a portal account. Email is stored lowercased.
type User struct {
	bun.BaseModel `bun:"table:users"`

	ID           int64  `bun:"id,pk,autoincrement"`
	Email        string `bun:"email,notnull"`
	PasswordHash string `bun:"password_hash,notnull"`
	Role         string `bun:"role,notnull"`
	// ClientID restricts a RoleUser account to one client's messages.
	ClientID          *string    `bun:"client_id"`
	IsActive          bool       `bun:"is_active,notnull"`
	FailedLogins      int        `bun:"failed_logins,notnull"`
	LockedUntil       *time.Time `bun:"locked_until"`
	LastLoginAt       *time.Time `bun:"last_login_at"`
	PasswordChangedAt time.Time  `bun:"password_changed_at,notnull"`
	CreatedAt         time.Time  `bun:"created_at,notnull"`
	UpdatedAt         time.Time  `bun:"updated_at,notnull"`
}

// LockedAt reports whether the account is locked out at time t.
func (u *User) LockedAt(t time.Time) bool {
	return u.LockedUntil != nil && t.Before(*u.LockedUntil)
}

// Client is one issued client certificate. A client id may have several
// over time (renewal, revocation and reissue).
type Client struct {
	bun.BaseModel `bun:"table:clients"`

	ID       int64  `bun:"id,pk,autoincrement"`
	ClientID string `bun:"client_id,notnull"`
	// SerialNumber is the certificate serial in lowercase hex.
	SerialNumber string `bun:"serial_number,notnull"`
	// FingerprintSHA256 is the lowercase hex SHA-256 of the DER certificate.
	FingerprintSHA256 string     `bun:"fingerprint_sha256,notnull"`
	Role              string     `bun:"role,notnull"`
	Status            string     `bun:"status,notnull"`
	Subject           string     `bun:"subject,notnull"`
	IssuedAt          time.Time  `bun:"issued_at,notnull"`
	NotAfter          time.Time  `bun:"not_after,notnull"`
	RevokedAt         *time.Time `bun:"revoked_at"`
	RevocationReason  *string    `bun:"revocation_reason"`
	// CreatedBy is the admin (or CLI user) who issued the certificate.
	CreatedBy string    `bun:"created_by,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}

// AuditEntry is a row of audit_log: who did what to which target, and how
// it ended.
type AuditEntry struct {
	bun.BaseModel `bun:"table:audit_log"`

	ID         int64     `bun:"id,pk,autoincrement"`
	CreatedAt  time.Time `bun:"created_at,notnull"`
	Actor      string    `bun:"actor,notnull"`
	Action     string    `bun:"action,notnull"`
	Target     string    `bun:"target,notnull"`
	Outcome    string    `bun:"outcome,notnull"`
	RemoteAddr string    `bun:"remote_addr,notnull"`
	// Details is free text; it must never contain a secret or message body.
	Details *string `bun:"details"`
}

// RefreshToken records an issued refresh token. Tokens of one login share a
// FamilyID, so reuse of a rotated token can revoke the whole family. The
// token itself is never stored: TokenHash is its SHA-256 (HashRefreshToken),
// by which it is looked up when presented.
type RefreshToken struct {
	bun.BaseModel `bun:"table:refresh_tokens"`

	ID        int64      `bun:"id,pk,autoincrement"`
	JTI       string     `bun:"jti,notnull"`
	TokenHash string     `bun:"token_hash,notnull"`
	FamilyID  string     `bun:"family_id,notnull"`
	UserID    int64      `bun:"user_id,notnull"`
	IssuedAt  time.Time  `bun:"issued_at,notnull"`
	ExpiresAt time.Time  `bun:"expires_at,notnull"`
	UsedAt    *time.Time `bun:"used_at"`
	RevokedAt *time.Time `bun:"revoked_at"`
}

// Device is an entry of the built-in device directory used by the RSA
// device channel. UserID is the directory's user key, not a portal user.
type Device struct {
	bun.BaseModel `bun:"table:devices"`

	ID        int64     `bun:"id,pk,autoincrement"`
	UserID    string    `bun:"user_id,notnull"`
	DeviceID  string    `bun:"device_id,notnull"`
	Name      string    `bun:"name,notnull"`
	Status    string    `bun:"status,notnull"`
	CreatedAt time.Time `bun:"created_at,notnull"`
	UpdatedAt time.Time `bun:"updated_at,notnull"`
}
