package storage

import "github.com/uptrace/bun"

// Page sizes for the list queries.
const (
	// DefaultPageSize is used when a filter's Limit is zero or negative.
	DefaultPageSize = 50
	// MaxPageSize caps any filter's Limit.
	MaxPageSize = 1000
)

// Store groups the repositories over one database handle.
type Store struct {
	DB            *bun.DB
	Messages      *MessageRepo
	Users         *UserRepo
	Clients       *ClientRepo
	Audit         *AuditRepo
	RefreshTokens *RefreshTokenRepo
	Devices       *DeviceRepo
	CertData      *CertDataRepo
}

// New returns a Store whose repositories share db.
func New(db *bun.DB) *Store {
	return &Store{
		DB:            db,
		Messages:      &MessageRepo{db: db},
		Users:         &UserRepo{db: db},
		Clients:       &ClientRepo{db: db},
		Audit:         &AuditRepo{db: db},
		RefreshTokens: &RefreshTokenRepo{db: db},
		Devices:       &DeviceRepo{db: db},
		CertData:      &CertDataRepo{db: db},
	}
}

// pageSize clamps a requested limit to [1, MaxPageSize], defaulting to
// DefaultPageSize.
func pageSize(limit int) int64 {
	switch {
	case limit <= 0:
		return DefaultPageSize
	case limit > MaxPageSize:
		return MaxPageSize
	default:
		return int64(limit)
	}
}

// countRow is the shape of "SELECT x AS label, COUNT(*) AS total ...
// GROUP BY x" results.
type countRow struct {
	Label string `bun:"label"`
	Total int64  `bun:"total"`
}

// countMap turns grouped counts into a map keyed by label.
func countMap(rows []countRow) map[string]int64 {
	m := make(map[string]int64, len(rows))
	for _, r := range rows {
		m[r.Label] = r.Total
	}
	return m
}
