package ingest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// Memories is what ingestion needs of memory (memory.Service implements it).
type Memories interface {
	WriteBatch(ctx context.Context, reqs []memory.WriteRequest) ([]memory.Memory, error)
	List(ctx context.Context, scope store.Scope, f memory.Filter, page store.Page) ([]memory.Memory, int, error)
	Delete(ctx context.Context, scope store.Scope, id string) error
}

// Target is where documents go: a scope's archival memory, optionally an
// agent's or a group's.
type Target struct {
	Scope   store.Scope
	AgentID string
	GroupID string
}

// Outcome is what putting a document did.
type Outcome int

// Outcomes of PutDocument.
const (
	Unchanged Outcome = iota // the same bytes were ingested before: nothing written
	New                      // the source had no memories
	Changed                  // the source's memories were replaced
)

// metaKey marks every memory of one source in one target, so a document's
// memories are found (and replaced) by one metadata filter.
const metaKey = "ingest_key"

// metaJob names the job that wrote a memory: a job resumed after a crash
// that finds its own memories counts the document as new, as it was.
const metaJob = "job_id"

func hashHex(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ContentHash is the hash PutDocument keys a document's content by.
func ContentHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// PutDocument makes the target's archival memory hold doc as the content of
// source, one memory per section (with the source, title, page or heading
// for citations). Memories are keyed by (target, source, content hash,
// section), so putting the same document again — a job resumed after a
// crash, a file uploaded twice — writes nothing and duplicates nothing; a
// document whose content changed gets its new memories written first (all
// in one transaction) and the old ones deleted after, so a crash in between
// leaves the old ones for the next put to delete, never a half document.
func PutDocument(ctx context.Context, mem Memories, t Target, jobID, source, contentHash string, doc Document) (Outcome, error) {
	key := hashHex(t.AgentID, t.GroupID, source)
	existing, err := listSource(ctx, mem, t, key)
	if err != nil {
		return 0, err
	}
	var current, stale []memory.Memory
	ownJob := false
	for _, m := range existing {
		if m.Metadata[memory.MetaDocHash] == contentHash {
			current = append(current, m)
			ownJob = ownJob || m.Metadata[metaJob] == jobID
		} else {
			stale = append(stale, m)
		}
	}
	out := New
	if len(existing) > 0 {
		out = Changed
	}
	switch {
	case len(current) == len(doc.Sections) && len(stale) == 0:
		if ownJob {
			return New, nil // this job wrote it before it was interrupted
		}
		return Unchanged, nil
	case len(current) == len(doc.Sections):
		// Written before a crash that came before the stale ones went.
	default:
		// Part of this content without the rest cannot come from one
		// transaction per document, but its ids would clash: start afresh.
		if err := deleteAll(ctx, mem, t, source, current); err != nil {
			return 0, err
		}
		if _, err := mem.WriteBatch(ctx, sectionWrites(t, key, jobID, source, contentHash, doc)); err != nil {
			return 0, fmt.Errorf("write %s: %w", source, err)
		}
	}
	if err := deleteAll(ctx, mem, t, source, stale); err != nil {
		return 0, err
	}
	return out, nil
}

func sectionWrites(t Target, key, jobID, source, contentHash string, doc Document) []memory.WriteRequest {
	reqs := make([]memory.WriteRequest, len(doc.Sections))
	for i, s := range doc.Sections {
		md := map[string]string{
			metaKey: key, metaJob: jobID, memory.MetaSource: source, memory.MetaTitle: doc.Title,
			memory.MetaDocHash: contentHash, "format": doc.Format, "section": strconv.Itoa(i),
		}
		if s.Page > 0 {
			md[memory.MetaPage] = strconv.Itoa(s.Page)
		}
		if s.Heading != "" {
			md[memory.MetaHeading] = s.Heading
		}
		for k, v := range doc.Meta {
			if _, set := md[k]; !set {
				md[k] = v
			}
		}
		reqs[i] = memory.WriteRequest{
			ID:    "mem_doc_" + hashHex(key, contentHash, strconv.Itoa(i))[:32],
			Scope: t.Scope, Type: memory.TypeArchival, AgentID: t.AgentID, GroupID: t.GroupID,
			Text: s.Text, Metadata: md,
		}
	}
	return reqs
}

func deleteAll(ctx context.Context, mem Memories, t Target, source string, ms []memory.Memory) error {
	for _, m := range ms {
		if err := mem.Delete(ctx, t.Scope, m.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("replace %s: %w", source, err)
		}
	}
	return nil
}

// DeleteDocument removes every memory of source in the target (a document
// deleted at its source); false when there was none.
func DeleteDocument(ctx context.Context, mem Memories, t Target, source string) (bool, error) {
	existing, err := listSource(ctx, mem, t, hashHex(t.AgentID, t.GroupID, source))
	if err != nil {
		return false, err
	}
	if err := deleteAll(ctx, mem, t, source, existing); err != nil {
		return false, err
	}
	return len(existing) > 0, nil
}

func listSource(ctx context.Context, mem Memories, t Target, key string) ([]memory.Memory, error) {
	const page = 500
	var out []memory.Memory
	for off := 0; ; off += page {
		ms, total, err := mem.List(ctx, t.Scope, memory.Filter{Types: []string{memory.TypeArchival}, Metadata: map[string]string{metaKey: key}},
			store.Page{Offset: off, Limit: page})
		if err != nil {
			return nil, fmt.Errorf("list memories of a source: %w", err)
		}
		out = append(out, ms...)
		if len(ms) < page || off+page >= total {
			return out, nil
		}
	}
}
