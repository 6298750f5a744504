package store

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrQuotaExceeded: the write would take its scope over one of its quotas;
// nothing was written. errors.As gives the *QuotaError with the figures.
var ErrQuotaExceeded = errors.New("quota exceeded")

// Quota names, as QuotaError.Quota reports them.
const (
	QuotaAgents      = "agents"       // agents of a scope
	QuotaMemoryBytes = "memory_bytes" // bytes of memory text (UTF-8) of a scope
)

// Quotas bound what one scope may hold. Zero (or less) is no bound.
type Quotas struct {
	AgentsPerScope int64
	// MemoryBytesPerScope bounds the bytes of text of a scope's memories
	// (what was written, not the chunks, vectors and indexes derived from it).
	MemoryBytesPerScope int64
}

// QuotaError says which quota a write would exceed and by how much.
type QuotaError struct {
	Quota  string // QuotaAgents or QuotaMemoryBytes
	Limit  int64
	Used   int64 // what the scope holds now
	Adding int64 // what the refused write would have added
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("%s quota exceeded: the scope holds %d of %d, the write adds %d", e.Quota, e.Used, e.Limit, e.Adding)
}

// Is makes errors.Is(err, ErrQuotaExceeded) hold.
func (e *QuotaError) Is(target error) bool { return target == ErrQuotaExceeded }

// QuotaSettings holds a store's quotas; the daemon sets them once at start,
// and a zero value has no bounds. Both adapters embed one, so the setter and
// its reads are written once.
type QuotaSettings struct {
	agents, memoryBytes atomic.Int64
}

// SetQuotas sets the bounds the store enforces from now on.
func (q *QuotaSettings) SetQuotas(v Quotas) {
	q.agents.Store(v.AgentsPerScope)
	q.memoryBytes.Store(v.MemoryBytesPerScope)
}

// Quotas returns the bounds in force.
func (q *QuotaSettings) Quotas() Quotas {
	return Quotas{AgentsPerScope: q.agents.Load(), MemoryBytesPerScope: q.memoryBytes.Load()}
}

// QuotaSetter is a store that enforces Quotas (both adapters are).
type QuotaSetter interface {
	SetQuotas(Quotas)
	Quotas() Quotas
}

// MemoryTextBytes is what a memory's text counts against QuotaMemoryBytes.
func MemoryTextBytes(text string) int64 { return int64(len(text)) }

// MemoryUsage is what a scope's memories hold.
type MemoryUsage struct {
	Memories  int64
	TextBytes int64
}

// CheckMemoryQuota is the memory quota's verdict on a write that brings its
// scope to total bytes by adding adding: a *QuotaError when limit (> 0) is
// exceeded.
func CheckMemoryQuota(limit, total, adding int64) error {
	if limit > 0 && adding > 0 && total > limit {
		return &QuotaError{Quota: QuotaMemoryBytes, Limit: limit, Used: total - adding, Adding: adding}
	}
	return nil
}
