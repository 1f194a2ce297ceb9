// Package device provides the `msgbroker_device` HTTP handler: the device
// channel (`POST /api`) of the original secure message server, answer for
// answer, so existing device fleets keep working unchanged.
//
// A device sends form fields (urlencoded or multipart): `key` (its user id
// followed by its device id) and either `status` (`on` opens a session,
// `off` closes it) or `message` (an encrypted envelope, see
// internal/devicecrypto). Opening a session takes an RSA key pair from a
// pool generated in the background and answers the public key; with
// `mode=hpke` the session uses HPKE instead (an X25519 key, base64), the
// recommended mode for new devices. Decrypted messages are stored under
// the SHA-256 of their text (internal/sessions), so a message sent twice is
// answered `duplicate`.
//
// Caddyfile (every option is optional; defaults shown):
//
//	msgbroker_device {
//		user_id_length   36            # the key's first N characters are the user id
//		directory        builtin       # or: wordpress { … }, see below
//		store            memory        # or redis: the msgbroker app's Redis server
//		sessions_db      2             # Redis database of sessions
//		messages_db      1             # Redis database of messages
//		message_prefix   ""            # Redis key prefix of messages
//		stream           ""            # Redis stream each new message is added to
//		session_ttl      30m           # a session expires after this long idle
//		message_ttl      0             # how long messages are kept (0: forever in Redis, see memory_messages)
//		memory_messages  100000        # messages kept by the in-process store
//		padding          oaep-sha256   # or oaep-sha1, pkcs1v15
//		mgf1_hash        sha256        # OAEP's MGF1 hash, if it differs (sha1 for Android)
//		aes_key_size     32            # pkcs1v15 only: the devices' AES key size in bytes
//		key_bits         2048
//		key_pool         32            # keys generated ahead
//		max_failures     5             # failed decryptions that close a session
//		max_message_size 64KiB         # decoded ciphertext limit
//		minute_window    0             # e.g. 10m: refuse minutes (since the Unix epoch) further off
//	}
//
//	directory wordpress {
//		dsn              {env.WP_DSN}  # go-sql-driver/mysql DSN of the WordPress database
//		table_prefix     wp_
//		uuid_meta_key    device_uuid   # required: usermeta key holding the user id
//		devices_meta_key devices       # required: usermeta key of the PHP-serialized device list
//		id_field         id
//		name_field       name
//		status_field     status
//	}
package device

import (
	"crypto/ecdh"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/msgbroker/caddy-msgbroker/internal/devicecrypto"
	"github.com/msgbroker/caddy-msgbroker/internal/directory"
	"github.com/msgbroker/caddy-msgbroker/internal/sessions"
	"github.com/msgbroker/caddy-msgbroker/modules/msgbroker"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults.
const (
	defaultUserIDLength   = 36
	defaultSessionTTL     = 30 * time.Minute
	defaultMaxFailures    = 5
	defaultMemoryMessages = 100000
	defaultSessionsDB     = 2
	defaultMessagesDB     = 1
	// maxKeyLength bounds the key field; longer keys are refused.
	maxKeyLength = 255
)

// Handler serves the device channel.
type Handler struct {
	// UserIDLength is how many leading characters of a key are the user
	// id; the rest is the device id. Default 36 (a UUID).
	UserIDLength int `json:"user_id_length,omitempty"`

	// Directory is "builtin" (default: the devices table) or "wordpress".
	Directory string `json:"directory,omitempty"`
	// WordPress configures the wordpress directory.
	WordPress *WordPressConfig `json:"wordpress,omitempty"`

	// Store is "memory" (default; one node) or "redis" (the msgbroker
	// app's Redis server, which must be configured).
	Store string `json:"store,omitempty"`
	// SessionsDB and MessagesDB are the Redis databases of sessions
	// (default 2) and messages (default 1).
	SessionsDB *int `json:"sessions_db,omitempty"`
	MessagesDB *int `json:"messages_db,omitempty"`
	// MessagePrefix prefixes message keys in Redis.
	MessagePrefix string `json:"message_prefix,omitempty"`
	// Stream, if set, is a Redis stream each new message is added to.
	Stream string `json:"stream,omitempty"`
	// SessionTTL is how long an idle session lives (default 30m).
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
	// MessageTTL is how long a message is kept and detected as a
	// duplicate (default: forever in Redis, see MemoryMessages).
	MessageTTL caddy.Duration `json:"message_ttl,omitempty"`
	// MemoryMessages bounds the in-process message store (default 100000).
	MemoryMessages int `json:"memory_messages,omitempty"`

	// Padding is the devices' RSA padding: oaep-sha256 (default),
	// oaep-sha1 or pkcs1v15.
	Padding string `json:"padding,omitempty"`
	// MGF1Hash is OAEP's MGF1 hash when it differs from the padding's.
	MGF1Hash string `json:"mgf1_hash,omitempty"`
	// AESKeySize is the devices' AES key size with pkcs1v15 (default 32).
	AESKeySize int `json:"aes_key_size,omitempty"`
	// KeyBits is the RSA key size (default 2048).
	KeyBits int `json:"key_bits,omitempty"`
	// KeyPool is how many keys are generated ahead (default 32).
	KeyPool int `json:"key_pool,omitempty"`
	// MaxFailures is how many failed decryptions close a session (default 5).
	MaxFailures int `json:"max_failures,omitempty"`
	// MaxMessageSize bounds a message's decoded ciphertext (default 64KiB).
	MaxMessageSize int64 `json:"max_message_size,omitempty"`
	// MinuteWindow, if set, refuses messages whose minute (then required
	// to be minutes since the Unix epoch, as the example clients send) is
	// further than this from the gateway's clock: a replay of an old
	// message is refused even after its record has expired.
	MinuteWindow caddy.Duration `json:"minute_window,omitempty"`

	app     *msgbroker.App
	logger  *zap.Logger
	padding devicecrypto.Padding
	keys    *devicecrypto.KeyPool
	wpDB    *sql.DB
	parsed  *keyCache
	// memSessions and memMessages are the in-process stores (store memory).
	memSessions sessions.Store
	memMessages sessions.MessageStore
	leases      []string

	mu *sync.Mutex
	rt *runtime
}

// WordPressConfig points at a WordPress database; see directory.WordPress.
type WordPressConfig struct {
	// DSN is a go-sql-driver/mysql DSN; placeholders are resolved.
	DSN         string `json:"dsn,omitempty"`
	TablePrefix string `json:"table_prefix,omitempty"`
	UUIDKey     string `json:"uuid_meta_key,omitempty"`
	DevicesKey  string `json:"devices_meta_key,omitempty"`
	IDField     string `json:"id_field,omitempty"`
	NameField   string `json:"name_field,omitempty"`
	StatusField string `json:"status_field,omitempty"`
}

// runtime is what the handler needs from the app's services, built on the
// first request (the app's services are ready only after it starts).
type runtime struct {
	sessions sessions.Store
	messages sessions.MessageStore
	dir      directory.Directory
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.msgbroker_device",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies defaults and acquires the key pool (shared by every
// config with the same key settings, so reloads keep its keys).
func (h *Handler) Provision(ctx caddy.Context) error {
	app, err := msgbroker.From(ctx)
	if err != nil {
		return err
	}
	h.app, h.logger, h.mu = app, ctx.Logger(), new(sync.Mutex)
	h.parsed = newKeyCache(10000)
	h.applyDefaults()
	if err := h.Validate(); err != nil {
		return err
	}
	if h.Store == "redis" && app.Redis == nil {
		return errors.New("msgbroker_device: store redis needs the redis setting of the msgbroker global option")
	}
	if h.padding, err = devicecrypto.ParsePadding(h.Padding, h.MGF1Hash, h.AESKeySize); err != nil {
		return fmt.Errorf("msgbroker_device: %w", err)
	}
	if h.keys, err = h.acquireKeyPool(); err != nil {
		return err
	}
	if h.Directory == "wordpress" {
		if h.wpDB, err = h.acquireWordPress(); err != nil {
			return err
		}
	}
	if h.Store == "memory" {
		if err := h.acquireMemoryStores(); err != nil {
			return err
		}
	}
	registerMetrics(ctx, h)
	return nil
}

func (h *Handler) applyDefaults() {
	if h.UserIDLength == 0 {
		h.UserIDLength = defaultUserIDLength
	}
	if h.Directory == "" {
		h.Directory = "builtin"
	}
	if h.Store == "" {
		h.Store = "memory"
	}
	if h.SessionTTL == 0 {
		h.SessionTTL = caddy.Duration(defaultSessionTTL)
	}
	if h.MaxFailures == 0 {
		h.MaxFailures = defaultMaxFailures
	}
	if h.MemoryMessages == 0 {
		h.MemoryMessages = defaultMemoryMessages
	}
	if h.MaxMessageSize == 0 {
		h.MaxMessageSize = devicecrypto.DefaultMaxCiphertext
	}
	if h.KeyBits == 0 {
		h.KeyBits = devicecrypto.DefaultKeyBits
	}
	if h.KeyPool == 0 {
		h.KeyPool = devicecrypto.DefaultPoolSize
	}
}

// Validate checks the configuration.
func (h *Handler) Validate() error {
	switch {
	case h.UserIDLength < 1 || h.UserIDLength >= maxKeyLength:
		return fmt.Errorf("msgbroker_device: user_id_length must be 1 to %d", maxKeyLength-1)
	case h.Directory != "builtin" && h.Directory != "wordpress":
		return fmt.Errorf("msgbroker_device: directory must be builtin or wordpress, got %q", h.Directory)
	case h.Directory == "wordpress" && (h.WordPress == nil || h.WordPress.DSN == ""):
		return errors.New("msgbroker_device: the wordpress directory needs a dsn")
	case h.Directory != "wordpress" && h.WordPress != nil:
		return errors.New("msgbroker_device: wordpress settings without directory wordpress")
	case h.Store != "memory" && h.Store != "redis":
		return fmt.Errorf("msgbroker_device: store must be memory or redis, got %q", h.Store)
	case h.SessionTTL < caddy.Duration(time.Second):
		return errors.New("msgbroker_device: session_ttl must be at least 1s")
	case h.MinuteWindow != 0 && h.MinuteWindow < caddy.Duration(time.Minute):
		return errors.New("msgbroker_device: minute_window must be at least 1m")
	case h.MessageTTL < 0:
		return errors.New("msgbroker_device: message_ttl must not be negative")
	case h.MaxFailures < 1:
		return errors.New("msgbroker_device: max_failures must be at least 1")
	case h.MaxMessageSize < 16 || h.MaxMessageSize > 16<<20:
		return errors.New("msgbroker_device: max_message_size must be 16 bytes to 16MiB")
	case h.KeyPool < 0 || h.KeyPool > 10000:
		return errors.New("msgbroker_device: key_pool must be 0 to 10000")
	}
	for _, db := range []*int{h.SessionsDB, h.MessagesDB} {
		if db != nil && (*db < 0 || *db > 15) {
			return errors.New("msgbroker_device: Redis databases are 0 to 15")
		}
	}
	if h.WordPress != nil {
		return h.wordpress(nil).Validate()
	}
	return nil
}

func (h *Handler) wordpress(db *sql.DB) *directory.WordPress {
	c := h.WordPress
	return &directory.WordPress{DB: db, TablePrefix: c.TablePrefix, UUIDKey: c.UUIDKey, DevicesKey: c.DevicesKey,
		IDField: c.IDField, NameField: c.NameField, StatusField: c.StatusField}
}

// ServeHTTP answers the device's request. The channel is POST only, like
// the original; other methods get 405 in the device answer shape.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeAnswer(w, http.StatusMethodNotAllowed, "method not allowed", codeInvalid, nil)
		return nil
	}
	req, code, msg := h.parse(w, r)
	if code != codeOK {
		writeAnswer(w, http.StatusBadRequest, msg, code, nil)
		return nil
	}
	rt, err := h.runtime(r.Context())
	if err != nil {
		h.unavailable(w, "the device channel is not ready", err)
		return nil
	}
	switch {
	case req.status == "on":
		h.auth(w, r, rt, req)
	case req.status == "off":
		h.logout(w, r, rt, req)
	default:
		h.message(w, r, rt, req)
	}
	return nil
}

// request is a parsed device request.
type request struct {
	key, userID, deviceID string
	status, mode          string
	message               string
}

// parse reads the form. A key that cannot be split (too short) is not an
// error: no such device exists, so it is answered "not found" later.
func (h *Handler) parse(w http.ResponseWriter, r *http.Request) (*request, int, string) {
	limit := 2*h.MaxMessageSize + 16<<10
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	var err error
	if ct := r.Header.Get("Content-Type"); len(ct) >= 19 && ct[:19] == "multipart/form-data" {
		err = r.ParseMultipartForm(limit)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, codeTooLarge, "too large"
		}
		return nil, codeInvalid, "invalid request"
	}
	req := &request{
		key:     r.PostForm.Get("key"),
		status:  r.PostForm.Get("status"),
		mode:    r.PostForm.Get("mode"),
		message: r.PostForm.Get("message"),
	}
	hasStatus, hasMessage := r.PostForm.Has("status"), r.PostForm.Has("message")
	switch {
	case req.key == "" || len(req.key) > maxKeyLength || hasStatus == hasMessage:
		return nil, codeInvalid, "invalid request"
	case hasStatus && req.status != "on" && req.status != "off":
		return nil, codeBadStatus, "invalid status"
	case req.mode != "" && (req.status != "on" || req.mode != sessions.ModeRSA && req.mode != sessions.ModeHPKE):
		return nil, codeBadMode, "invalid mode"
	}
	if req.mode == "" {
		req.mode = sessions.ModeRSA
	}
	if len(req.key) > h.UserIDLength {
		req.userID, req.deviceID = req.key[:h.UserIDLength], req.key[h.UserIDLength:]
	}
	return req, codeOK, ""
}

// auth opens a session.
func (h *Handler) auth(w http.ResponseWriter, r *http.Request, rt *runtime, req *request) {
	ctx := r.Context()
	if req.deviceID == "" {
		writeAnswer(w, http.StatusOK, "not found", codeNotFound, nil)
		return
	}
	dev, err := rt.dir.Lookup(ctx, req.userID, req.deviceID)
	if errors.Is(err, directory.ErrNotFound) {
		if err != directory.ErrNotFound {
			h.logger.Warn("device directory entry unusable", zap.String("user", req.userID), zap.Error(err))
		}
		writeAnswer(w, http.StatusOK, "not found", codeNotFound, nil)
		return
	}
	if err != nil {
		h.unavailable(w, "device directory unavailable", err)
		return
	}
	// No Get first: Create refuses an existing session atomically (and
	// restarts its idle TTL, as a Get would), so a start costs one store
	// round trip. The key taken for a refused session was neither stored
	// nor shown to anyone and goes back to the pool.
	sess, public, pooled, err := h.newSession(req)
	if err != nil {
		h.unavailable(w, "creating a session key failed", err)
		return
	}
	switch err := rt.sessions.Create(ctx, req.key, sess); {
	case errors.Is(err, sessions.ErrExists):
		h.returnKey(pooled)
		writeAnswer(w, http.StatusOK, "already auth", codeAgain, nil)
		return
	case err != nil:
		// The key is not given back: the store may have kept it
		// (a reply lost after the write), and no key may serve two
		// sessions.
		h.unavailable(w, "session store unavailable", err)
		return
	}
	if err := rt.dir.SetStatus(ctx, req.userID, req.deviceID, true); err != nil {
		h.logger.Warn("recording the device as connected failed", zap.String("user", req.userID),
			zap.String("device", req.deviceID), zap.Error(err))
	}
	metrics.sessionsOpened.Inc()
	h.logger.Info("device session opened", zap.String("user", req.userID), zap.String("device", req.deviceID), zap.String("mode", req.mode))
	writeAnswer(w, http.StatusOK, public, codeOK, &dev.Name)
}

// newSession makes a session's key pair and returns its public key as the
// device receives it: PEM (SubjectPublicKeyInfo) in RSA mode, the base64
// of the 32-byte X25519 key in HPKE mode. In RSA mode it also returns the
// pooled key, to give back if the session is not created.
func (h *Handler) newSession(req *request) (*sessions.Session, string, *devicecrypto.PooledKey, error) {
	s := &sessions.Session{UserID: req.userID, DeviceID: req.deviceID, Mode: req.mode, CreatedAt: time.Now().UTC()}
	if req.mode == sessions.ModeHPKE {
		priv, err := devicecrypto.NewHPKEKey()
		if err != nil {
			return nil, "", nil, err
		}
		s.PrivateKey = priv.Bytes()
		return s, base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes()), nil, nil
	}
	key, err := h.keys.Get()
	if err != nil {
		return nil, "", nil, err
	}
	s.PrivateKey = key.PKCS8
	return s, key.PublicPEM, key, nil
}

// returnKey gives an unused RSA key back to the pool.
func (h *Handler) returnKey(key *devicecrypto.PooledKey) {
	if key != nil {
		h.keys.Return(key)
	}
}

// logout closes a session.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, rt *runtime, req *request) {
	switch err := rt.sessions.Delete(r.Context(), req.key); {
	case errors.Is(err, sessions.ErrNotFound):
		writeAnswer(w, http.StatusOK, "not found", codeNotFound, nil)
		return
	case err != nil:
		h.unavailable(w, "session store unavailable", err)
		return
	}
	if err := rt.dir.SetStatus(r.Context(), req.userID, req.deviceID, false); err != nil {
		h.logger.Warn("recording the device as disconnected failed", zap.String("user", req.userID),
			zap.String("device", req.deviceID), zap.Error(err))
	}
	h.logger.Info("device session closed", zap.String("user", req.userID), zap.String("device", req.deviceID))
	writeAnswer(w, http.StatusOK, "deleted", codeOK, nil)
}

// message decrypts and stores a message.
func (h *Handler) message(w http.ResponseWriter, r *http.Request, rt *runtime, req *request) {
	ctx := r.Context()
	sess, err := rt.sessions.Get(ctx, req.key)
	if errors.Is(err, sessions.ErrNotFound) {
		metrics.messages.WithLabelValues("not_found").Inc()
		writeAnswer(w, http.StatusOK, "not found", codeNotFound, nil)
		return
	}
	if err != nil {
		h.unavailable(w, "session store unavailable", err)
		return
	}
	plaintext, minute, code := h.open(sess, req)
	switch code {
	case codeMalformed:
		metrics.messages.WithLabelValues("rejected").Inc()
		writeAnswer(w, http.StatusBadRequest, "malformed message", codeMalformed, nil)
		return
	case codeUndecryptable:
		metrics.messages.WithLabelValues("rejected").Inc()
		metrics.decryptFailures.Inc()
		closed, err := rt.sessions.Fail(ctx, req.key, h.MaxFailures)
		if err != nil {
			h.unavailable(w, "session store unavailable", err)
			return
		}
		if closed {
			metrics.sessionsFailed.Inc()
			h.logger.Warn("device session closed after failed decryptions", zap.String("user", req.userID),
				zap.String("device", req.deviceID), zap.Int("failures", h.MaxFailures))
		}
		writeAnswer(w, http.StatusBadRequest, "undecryptable message", codeUndecryptable, nil)
		return
	}
	if !h.inWindow(minute, time.Now()) {
		metrics.messages.WithLabelValues("rejected").Inc()
		writeAnswer(w, http.StatusBadRequest, "stale message", codeStale, nil)
		return
	}
	sum := sha256.Sum256(plaintext)
	rec := &sessions.Record{ID: hex.EncodeToString(sum[:]), UserID: sess.UserID, DeviceID: sess.DeviceID,
		Minute: minute, ReceivedAt: time.Now().UTC(), Data: string(plaintext)}
	dup, err := rt.messages.Put(ctx, rec)
	if err != nil {
		h.unavailable(w, "message store unavailable", err)
		return
	}
	if dup {
		metrics.messages.WithLabelValues("duplicate").Inc()
		writeAnswer(w, http.StatusOK, "duplicate", codeAgain, nil)
		return
	}
	metrics.messages.WithLabelValues("delivered").Inc()
	h.logger.Debug("device message delivered", zap.String("user", sess.UserID), zap.String("device", sess.DeviceID), zap.String("id", rec.ID))
	writeAnswer(w, http.StatusOK, "delivered", codeOK, nil)
}

// inWindow reports whether minute is acceptable at now.
func (h *Handler) inWindow(minute string, now time.Time) bool {
	if h.MinuteWindow == 0 {
		return true
	}
	m, err := strconv.ParseInt(minute, 10, 64)
	if err != nil {
		return false
	}
	window := int64(time.Duration(h.MinuteWindow) / time.Minute)
	diff := now.Unix()/60 - m
	return diff >= -window && diff <= window
}

// open parses and decrypts the message in the session's mode.
func (h *Handler) open(sess *sessions.Session, req *request) ([]byte, string, int) {
	if sess.Mode == sessions.ModeHPKE {
		env, err := devicecrypto.ParseHPKEEnvelope([]byte(req.message), int(h.MaxMessageSize)+16)
		if err != nil {
			return nil, "", codeMalformed
		}
		priv, err := ecdh.X25519().NewPrivateKey(sess.PrivateKey)
		if err != nil {
			return nil, "", codeUndecryptable
		}
		plaintext, err := devicecrypto.OpenHPKE(priv, devicecrypto.HPKEInfo(sess.UserID, sess.DeviceID), env)
		if err != nil {
			return nil, "", codeUndecryptable
		}
		return plaintext, env.Minute, codeOK
	}
	env, err := devicecrypto.ParseEnvelope([]byte(req.message), int(h.MaxMessageSize))
	if err != nil {
		return nil, "", codeMalformed
	}
	priv, err := h.parsed.get(req.key, sess.PrivateKey)
	if err != nil {
		return nil, "", codeUndecryptable
	}
	plaintext, err := h.padding.Open(priv, env)
	if err != nil {
		return nil, "", codeUndecryptable
	}
	return plaintext, env.Minute, codeOK
}

// unavailable answers 503 in the device answer shape and logs the cause.
func (h *Handler) unavailable(w http.ResponseWriter, what string, err error) {
	h.logger.Error(what, zap.Error(err))
	w.Header().Set("Retry-After", "1")
	writeAnswer(w, http.StatusServiceUnavailable, "unavailable", codeUnavailable, nil)
}

// Cleanup releases the pooled resources.
func (h *Handler) Cleanup() error {
	var errs []error
	for _, key := range h.leases {
		if _, err := pool.Delete(key); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
