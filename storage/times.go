package storage

import "time"

// utc normalises t to what the database stores: UTC with microsecond
// precision (MySQL DATETIME(6)), so values read back compare equal.
func utc(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// utcPtr is utc for nullable timestamps.
func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := utc(*t)
	return &v
}

// now is the current time as the database stores it.
func now() time.Time {
	return utc(time.Now())
}

// orTime returns t normalised, or def when t is zero; repositories use it
// to fill timestamps the caller left unset.
func orTime(t, def time.Time) time.Time {
	if t.IsZero() {
		return def
	}
	return utc(t)
}
