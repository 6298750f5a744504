package httpapi

import (
	"errors"
	"fmt"

	"github.com/openintern/openintern/store"
)

// A write over a scope's quota is 409 quota_exceeded: the refusal comes from
// the state of the scope (what it holds), deleting something resolves it and
// retrying unchanged does not (unlike 429), and it is not about who asks
// (403 is the authorization matrix's answer for a role or scope refusal).

// quotaMessage names the quota, the scope's usage and how to get out.
func quotaMessage(err error) string {
	var qe *store.QuotaError
	if !errors.As(err, &qe) {
		return "a quota of this scope is reached"
	}
	switch qe.Quota {
	case store.QuotaAgents:
		return fmt.Sprintf("agent quota reached: this scope has %d agents, its limit is %d (OPENINTERN_MAX_AGENTS_PER_SCOPE); delete an agent first",
			qe.Used, qe.Limit)
	case store.QuotaMemoryBytes:
		return fmt.Sprintf("memory quota reached: this scope stores %s of memory text, its limit is %s (OPENINTERN_MAX_MEMORY_BYTES_PER_SCOPE), and this write adds %s; delete memories first",
			byteSize(qe.Used), byteSize(qe.Limit), byteSize(qe.Adding))
	}
	return qe.Error()
}

// byteSize writes n bytes for people: "512 B", "1.5 MiB".
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", float64(n)/float64(div), "KMGTP"[exp], n)
}
