package storage

import "github.com/uptrace/bun"

// ListQuery is the query MessageRepo.List runs, for tests that check its
// plan.
func ListQuery(r *MessageRepo, f MessageFilter) *bun.SelectQuery {
	var msgs []Message
	return r.listQuery(&msgs, f)
}
