package sessions

import (
	"context"
	"sync"
	"time"
)

// Memory is the in-process Store, for a single node.
type Memory struct {
	ttl time.Duration
	now func() time.Time

	mu       sync.Mutex
	sessions map[string]*memSession
	swept    int
}

type memSession struct {
	s        Session
	failures int
	expires  time.Time
}

// NewMemory returns an in-process store whose sessions expire after ttl
// idle.
func NewMemory(ttl time.Duration) *Memory {
	return &Memory{ttl: ttl, now: time.Now, sessions: make(map[string]*memSession)}
}

// Create implements Store.
func (m *Memory) Create(_ context.Context, key string, s *Session) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if old, ok := m.sessions[key]; ok && now.Before(old.expires) {
		old.expires = now.Add(m.ttl)
		return ErrExists
	}
	m.sessions[key] = &memSession{s: *s, expires: now.Add(m.ttl)}
	m.sweep(now)
	return nil
}

// sweep drops expired sessions whenever the map has doubled since the last
// sweep, so abandoned sessions cost amortized constant time.
func (m *Memory) sweep(now time.Time) {
	if len(m.sessions) < 2*m.swept+64 {
		return
	}
	for k, s := range m.sessions {
		if !now.Before(s.expires) {
			delete(m.sessions, k)
		}
	}
	m.swept = len(m.sessions)
}

// live returns the unexpired session under key; m.mu is held.
func (m *Memory) live(key string, now time.Time) *memSession {
	s, ok := m.sessions[key]
	if !ok {
		return nil
	}
	if !now.Before(s.expires) {
		delete(m.sessions, key)
		return nil
	}
	return s
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, key string) (*Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	s := m.live(key, now)
	if s == nil {
		return nil, ErrNotFound
	}
	s.expires = now.Add(m.ttl)
	out := s.s
	return &out, nil
}

// Delete implements Store.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live(key, m.now()) == nil {
		return ErrNotFound
	}
	delete(m.sessions, key)
	return nil
}

// Fail implements Store.
func (m *Memory) Fail(_ context.Context, key string, limit int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.live(key, m.now())
	if s == nil {
		return false, nil
	}
	s.failures++
	if s.failures >= limit {
		delete(m.sessions, key)
		return true, nil
	}
	return false, nil
}

// Count implements Store; it counts sessions not yet swept, expired or not.
func (m *Memory) Count(context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.sessions)), nil
}

// MemoryMessages is the in-process MessageStore. It keeps at most max
// messages (dropping the oldest, which then no longer count as duplicates)
// for at most ttl (0: until dropped).
type MemoryMessages struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	records map[string]*Record
	order   []string
}

// NewMemoryMessages returns an in-process message store.
func NewMemoryMessages(ttl time.Duration, max int) *MemoryMessages {
	return &MemoryMessages{ttl: ttl, max: max, now: time.Now, records: make(map[string]*Record)}
}

// Put implements MessageStore.
func (m *MemoryMessages) Put(_ context.Context, r *Record) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.records[r.ID]; ok {
		if m.ttl == 0 || m.now().Before(old.ReceivedAt.Add(m.ttl)) {
			return true, nil
		}
	} else {
		m.order = append(m.order, r.ID)
	}
	stored := *r
	m.records[r.ID] = &stored
	for len(m.records) > m.max && len(m.order) > 0 {
		delete(m.records, m.order[0])
		m.order = m.order[1:]
	}
	return false, nil
}

// Get returns the stored message with id, if any.
func (m *MemoryMessages) Get(id string) (Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[id]
	if !ok {
		return Record{}, false
	}
	return *r, true
}
