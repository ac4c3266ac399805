package sharedstore

// RoundTrips is how many pipelines s has sent for Incr.
func (s *Redis) RoundTrips() int64 { return s.batch.roundTrips.Load() }

// Queued is how many Incr calls wait for the flusher.
func (s *Redis) Queued() int {
	s.batch.mu.Lock()
	defer s.batch.mu.Unlock()
	return len(s.batch.queue)
}
