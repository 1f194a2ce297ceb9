-- Base schema. SQLite runs DDL inside the migration's transaction, so a
-- failure leaves nothing behind. Timestamps are UTC text in the format bun
-- writes ('2006-01-02 15:04:05.999999+00:00'), which sorts chronologically;
-- the defaults produce the same shape for rows written by hand.
-- AUTOINCREMENT keeps ids from being reused, which keyset cursors rely on.

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id CHAR(36) NOT NULL,
    client_id VARCHAR(64) NOT NULL,
    sender_number_hash CHAR(64) NOT NULL,
    sender_number_masked VARCHAR(32) NOT NULL,
    body_encrypted BLOB NOT NULL,
    encryption_key_id VARCHAR(64) NOT NULL,
    payload_hash CHAR(64) NOT NULL,
    metadata TEXT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'queued',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NULL,
    queued_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    delivered_at DATETIME NULL,
    failed_at DATETIME NULL,
    created_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    CONSTRAINT uq_messages_message_id UNIQUE (message_id),
    CONSTRAINT ck_messages_status CHECK (status IN ('queued', 'processing', 'retrying', 'delivered', 'failed')),
    CONSTRAINT ck_messages_attempts CHECK (attempts >= 0)
);

--bun:split

-- NOCASE matches the case-insensitive uniqueness MySQL's utf8mb4_unicode_ci
-- gives; the repository stores emails lowercased anyway.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email VARCHAR(255) NOT NULL COLLATE NOCASE,
    password_hash VARCHAR(255) NOT NULL,
    role VARCHAR(16) NOT NULL DEFAULT 'user',
    client_id VARCHAR(64) NULL,
    is_active BOOLEAN NOT NULL DEFAULT 1,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    locked_until DATETIME NULL,
    last_login_at DATETIME NULL,
    password_changed_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    created_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_role CHECK (role IN ('admin', 'user'))
);

--bun:split

CREATE TABLE clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id VARCHAR(64) NOT NULL,
    serial_number VARCHAR(64) NOT NULL,
    fingerprint_sha256 CHAR(64) NOT NULL,
    role VARCHAR(16) NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'active',
    subject VARCHAR(255) NOT NULL,
    issued_at DATETIME NOT NULL,
    not_after DATETIME NOT NULL,
    revoked_at DATETIME NULL,
    revocation_reason VARCHAR(255) NULL,
    created_by VARCHAR(255) NOT NULL,
    created_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    CONSTRAINT uq_clients_serial_number UNIQUE (serial_number),
    CONSTRAINT uq_clients_fingerprint_sha256 UNIQUE (fingerprint_sha256),
    CONSTRAINT ck_clients_role CHECK (role IN ('proxy', 'worker')),
    CONSTRAINT ck_clients_status CHECK (status IN ('active', 'revoked'))
);

--bun:split

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    actor VARCHAR(255) NOT NULL,
    action VARCHAR(64) NOT NULL,
    target VARCHAR(255) NOT NULL DEFAULT '',
    outcome VARCHAR(16) NOT NULL,
    remote_addr VARCHAR(64) NOT NULL DEFAULT '',
    details TEXT NULL
);

--bun:split

CREATE TABLE refresh_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    jti CHAR(36) NOT NULL,
    family_id CHAR(36) NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    used_at DATETIME NULL,
    revoked_at DATETIME NULL,
    CONSTRAINT uq_refresh_tokens_jti UNIQUE (jti)
);

--bun:split

CREATE INDEX idx_refresh_tokens_family_id ON refresh_tokens (family_id);

--bun:split

CREATE INDEX idx_refresh_tokens_user_id ON refresh_tokens (user_id);

--bun:split

CREATE TABLE devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id VARCHAR(64) NOT NULL,
    device_id VARCHAR(64) NOT NULL,
    name VARCHAR(255) NOT NULL DEFAULT '',
    status VARCHAR(8) NOT NULL DEFAULT 'off',
    created_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    CONSTRAINT uq_devices_user_id_device_id UNIQUE (user_id, device_id),
    CONSTRAINT ck_devices_status CHECK (status IN ('on', 'off'))
);

--bun:split

CREATE TABLE certmagic_data (
    "key" VARCHAR(255) NOT NULL PRIMARY KEY,
    value BLOB NOT NULL,
    modified DATETIME NOT NULL
);

--bun:split

CREATE TABLE certmagic_locks (
    name VARCHAR(255) NOT NULL PRIMARY KEY,
    owner VARCHAR(255) NOT NULL,
    expires_at DATETIME NOT NULL
);
