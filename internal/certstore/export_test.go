package certstore

import "time"

// PollInterval exposes the wait between attempts on a held lock.
func PollInterval(s *Store) time.Duration { return s.pollInterval() }

// OwnerName exposes how a lock's owner is named.
var OwnerName = ownerName
