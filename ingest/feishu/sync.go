package feishu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/openintern/openintern/ingest"
	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// Metadata keys of a synced document's memories, besides ingest's citation keys.
const (
	MetaRevision  = "revision"   // the docx revision id ingested
	MetaConnector = "connector"  // the connector that synced it
	MetaDocToken  = "feishu_doc" // the document's token
)

// SyncParams are a feishu_sync job's parameters.
type SyncParams struct {
	ConnectorID string `json:"connector_id"`
}

// syncCheckpoint: documents up to After (by token) are done and counted;
// in the delete phase, tombstones up to DelAfter are.
type syncCheckpoint struct {
	Phase    string `json:"phase"`
	After    string `json:"after,omitempty"`
	DelAfter string `json:"del_after,omitempty"`
}

// Sync is the feishu_sync job kind: it lists a connector's sources, ingests
// documents new or changed since the last sync (by revision or modified
// time), and removes the memories of documents gone from the sources.
// Documents are done in token order and recorded (with this job and its
// outcome) in the store as they are done, so a job resumed after a crash
// skips what it finished and counts every document once.
type Sync struct {
	Store    store.FeishuStore
	Memories ingest.Memories
	// Client is nil when the daemon has no Feishu app configured: the job
	// fails saying so.
	Client *Client
}

// Name is store.KindFeishuSync.
func (Sync) Name() string { return store.KindFeishuSync }

// item is one document a source listed.
type item struct {
	Token   string
	Title   string
	URL     string
	Version string // "" until read from the document itself
	Meta    *DocMeta
}

// Run syncs the connector named by the job's parameters.
func (k Sync) Run(ctx context.Context, j *ingest.Job) error {
	if k.Client == nil {
		return errors.New("feishu is not configured on this daemon (feishu.enabled, appId, appSecret)")
	}
	var params SyncParams
	if err := json.Unmarshal(j.Params, &params); err != nil || params.ConnectorID == "" {
		return fmt.Errorf("bad parameters: a connector_id is required")
	}
	conn, err := k.Store.GetFeishuConnector(ctx, j.Scope, params.ConnectorID)
	if err != nil {
		return fmt.Errorf("connector %s: %w", params.ConnectorID, err)
	}
	var cp syncCheckpoint
	if _, err := j.Checkpoint(&cp); err != nil {
		return err
	}
	if err := k.Store.PurgeFeishuTombstones(ctx, j.Scope, conn.ID, j.ID); err != nil {
		return err
	}
	items, complete, err := k.list(ctx, j, conn)
	if err != nil {
		return err
	}
	known, err := k.Store.ListFeishuDocs(ctx, j.Scope, conn.ID)
	if err != nil {
		return err
	}
	byToken := make(map[string]store.FeishuDoc, len(known))
	for _, d := range known {
		byToken[d.Token] = d
	}
	j.Update(func(p *store.JobProgress) { p.Total, p.Counts.Found = len(items), len(items) })
	target := ingest.Target{Scope: j.Scope}

	if cp.Phase == "" || cp.Phase == "docs" {
		for i, it := range items {
			if cp.Phase == "docs" && it.Token <= cp.After {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			outcome, err := k.one(ctx, j, conn, target, it, byToken)
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case err != nil && itemFault(err):
				j.ItemFailed(it.URL, err)
			case err != nil:
				return fmt.Errorf("%s: %w", it.URL, err)
			}
			j.Update(func(p *store.JobProgress) {
				p.Done = i + 1
				count(&p.Counts, outcome)
			})
			// Saved every few documents: one interrupted in between is
			// done again, and one already recorded by this job counts by
			// its record (see one), so the counts stay exact.
			if (i+1)%saveEvery == 0 || i == len(items)-1 {
				if err := j.Save(ctx, syncCheckpoint{Phase: "docs", After: it.Token}); err != nil {
					return err
				}
			}
		}
		cp = syncCheckpoint{Phase: "delete"}
		j.Update(func(p *store.JobProgress) { p.Done = len(items) })
		if err := j.Save(ctx, cp); err != nil {
			return err
		}
	}
	if !complete {
		// A source could not be listed in full: what it did not list is
		// not known to be gone, so nothing is deleted this time.
		return nil
	}
	listed := make(map[string]bool, len(items))
	for _, it := range items {
		listed[it.Token] = true
	}
	for _, d := range known {
		if d.Token <= cp.DelAfter || listed[d.Token] {
			continue
		}
		switch {
		case d.Deleted && d.JobID == j.ID: // deleted by this job before it was interrupted
		case d.Deleted:
			continue
		default:
			if _, err := ingest.DeleteDocument(ctx, k.Memories, target, d.URL); err != nil {
				return err
			}
			d.Deleted, d.JobID, d.Outcome = true, j.ID, store.FeishuDocDeleted
			if err := k.Store.PutFeishuDoc(ctx, j.Scope, d); err != nil {
				return err
			}
		}
		j.Update(func(p *store.JobProgress) { p.Counts.Deleted++ })
		if err := j.Save(ctx, syncCheckpoint{Phase: "delete", DelAfter: d.Token}); err != nil {
			return err
		}
	}
	return nil
}

func count(c *store.JobCounts, outcome string) {
	switch outcome {
	case store.FeishuDocNew:
		c.New++
	case store.FeishuDocChanged:
		c.Changed++
	case store.FeishuDocUnchanged:
		c.Unchanged++
	}
}

// one brings one listed document up to date; its outcome ("" when it failed).
func (k Sync) one(ctx context.Context, j *ingest.Job, conn store.FeishuConnector, t ingest.Target, it item,
	known map[string]store.FeishuDoc) (string, error) {
	prev, seen := known[it.Token]
	seen = seen && !prev.Deleted
	if seen && prev.JobID == j.ID {
		// Done by this job before an interruption that came before its count was saved.
		return prev.Outcome, nil
	}
	if seen && it.Version != "" && prev.Version == it.Version {
		return store.FeishuDocUnchanged, nil
	}
	meta := it.Meta
	if meta == nil {
		m, err := k.Client.Document(ctx, it.Token)
		if err != nil {
			return "", err
		}
		meta = &m
	}
	blocks, err := k.Client.Blocks(ctx, it.Token)
	if err != nil {
		return "", err
	}
	title := meta.Title
	if title == "" {
		title = it.Title
	}
	doc, text := documentOf(title, blocks)
	doc.Meta = map[string]string{MetaRevision: strconv.FormatInt(meta.RevisionID, 10), MetaConnector: conn.ID, MetaDocToken: it.Token}
	if seen && prev.URL != "" && prev.URL != it.URL {
		// The document moved (from a folder to a wiki, say): its memories
		// were keyed by the old address.
		if _, err := ingest.DeleteDocument(ctx, k.Memories, t, prev.URL); err != nil {
			return "", err
		}
	}
	hash := ingest.ContentHash([]byte(title + "\x00" + text))
	out, err := ingest.PutDocument(ctx, k.Memories, t, j.ID, it.URL, hash, doc)
	if err != nil {
		return "", err
	}
	outcome := store.FeishuDocNew
	switch {
	case out == ingest.Unchanged && seen:
		outcome = store.FeishuDocUnchanged
	case seen:
		outcome = store.FeishuDocChanged
	}
	version := it.Version
	if version == "" {
		version = "rev:" + strconv.FormatInt(meta.RevisionID, 10)
	}
	if err := k.Store.PutFeishuDoc(ctx, j.Scope, store.FeishuDoc{ConnectorID: conn.ID, Token: it.Token, ObjType: "docx", Title: title,
		URL: it.URL, Version: version, ContentHash: hash, Sections: len(doc.Sections), JobID: j.ID, Outcome: outcome}); err != nil {
		return "", err
	}
	return outcome, nil
}

// itemFault reports whether err is the document's own (Feishu refused or
// could not give it, or memory refused it), so the sync goes on without it;
// anything else (the store down, the job cancelled) ends the job.
func itemFault(err error) bool {
	var apiErr *APIError
	var te *transientError
	return errors.As(err, &apiErr) || errors.As(err, &te) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, memory.ErrInvalid) || errors.Is(err, store.ErrQuotaExceeded) || errors.Is(err, store.ErrPermanent)
}

// list enumerates the connector's documents, deduplicated and in token
// order; complete is false when a source could not be listed in full (its
// error counted as a failed item).
func (k Sync) list(ctx context.Context, j *ingest.Job, conn store.FeishuConnector) ([]item, bool, error) {
	byToken := map[string]item{}
	add := func(it item) {
		if _, dup := byToken[it.Token]; !dup {
			byToken[it.Token] = it
		}
	}
	complete := true
	for _, src := range conn.Sources {
		var err error
		switch src.Type {
		case store.FeishuSourceDocx:
			var m DocMeta
			m, err = k.Client.Document(ctx, src.Token)
			if err == nil {
				add(item{Token: src.Token, Title: m.Title, URL: k.Client.WebURL("docx", src.Token),
					Version: "rev:" + strconv.FormatInt(m.RevisionID, 10), Meta: &m})
			}
		case store.FeishuSourceWiki:
			err = k.walkWiki(ctx, src.Token, src.RootNode, add)
		case store.FeishuSourceDrive:
			err = k.walkDrive(ctx, src.Token, add, 0)
		}
		if ctx.Err() != nil {
			return nil, false, ctx.Err()
		}
		if err != nil {
			if !itemFault(err) {
				return nil, false, err
			}
			// A docx source Feishu says is gone is gone: its memories are
			// deleted below. A space or folder that cannot be listed says
			// nothing of what is in it.
			if src.Type != store.FeishuSourceDocx || !errors.Is(err, ErrNotFound) {
				complete = false
			}
			j.ItemFailed(src.Type+":"+src.Token, err)
		}
	}
	items := make([]item, 0, len(byToken))
	for _, it := range byToken {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.Token, b.Token) })
	return items, complete, nil
}

// saveEvery is how many documents a sync does between saves of its progress.
const saveEvery = 10

// maxDepth bounds a folder or wiki walk, against a cycle of shortcuts.
const maxDepth = 64

func (k Sync) walkWiki(ctx context.Context, space, root string, add func(item)) error {
	type level struct {
		parent string
		depth  int
	}
	queue := []level{{parent: root}}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		nodes, err := k.Client.WikiNodes(ctx, space, cur.parent)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.ObjType == "docx" && n.ObjToken != "" {
				add(item{Token: n.ObjToken, Title: n.Title, URL: k.Client.WebURL("wiki", n.NodeToken), Version: "edit:" + n.ObjEditTime})
			}
			if n.HasChild && cur.depth < maxDepth {
				queue = append(queue, level{parent: n.NodeToken, depth: cur.depth + 1})
			}
		}
	}
	return nil
}

func (k Sync) walkDrive(ctx context.Context, folder string, add func(item), depth int) error {
	files, err := k.Client.DriveFiles(ctx, folder)
	if err != nil {
		return err
	}
	for _, f := range files {
		switch f.Type {
		case "docx":
			u := f.URL
			if u == "" {
				u = k.Client.WebURL("docx", f.Token)
			}
			add(item{Token: f.Token, Title: f.Name, URL: u, Version: "mtime:" + f.ModifiedTime})
		case "folder":
			if depth < maxDepth {
				if err := k.walkDrive(ctx, f.Token, add, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// documentOf cuts a document's blocks into sections at its headings, each
// under its heading path, and returns the text the content hash covers.
func documentOf(title string, blocks []Block) (ingest.Document, string) {
	doc := ingest.Document{Title: title, Format: "feishu_docx"}
	var (
		stack []string
		cur   strings.Builder
		all   strings.Builder
	)
	flush := func() {
		if strings.TrimSpace(cur.String()) != "" {
			doc.Sections = append(doc.Sections, ingest.Section{Text: cur.String(), Heading: strings.Join(nonEmpty(stack), " > ")})
		}
		cur.Reset()
	}
	for _, b := range blocks {
		level, text := blockText(b)
		switch {
		case b.BlockType == 1: // the page: its text is the title
			continue
		case level > 0:
			flush()
			for len(stack) < level {
				stack = append(stack, "")
			}
			stack = append(stack[:level-1], text)
			cur.WriteString(text + "\n\n")
			all.WriteString(strings.Repeat("#", level) + " " + text + "\n")
		case text != "":
			cur.WriteString(text + "\n")
			all.WriteString(text + "\n")
		}
	}
	flush()
	return doc, all.String()
}

func nonEmpty(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// blockText is a block's text and, for a heading, its level (1-9).
func blockText(b Block) (int, string) {
	headings := []*BlockText{b.Heading1, b.Heading2, b.Heading3, b.Heading4, b.Heading5, b.Heading6, b.Heading7, b.Heading8, b.Heading9}
	if b.BlockType >= 3 && b.BlockType <= 11 && headings[b.BlockType-3] != nil {
		return b.BlockType - 2, joinText(headings[b.BlockType-3])
	}
	for _, t := range []*BlockText{b.Text, b.Bullet, b.Ordered, b.Code, b.Quote, b.Todo} {
		if t != nil {
			return 0, joinText(t)
		}
	}
	return 0, ""
}

func joinText(t *BlockText) string {
	var sb strings.Builder
	for _, e := range t.Elements {
		switch {
		case e.TextRun != nil:
			sb.WriteString(e.TextRun.Content)
		case e.MentionDoc != nil:
			sb.WriteString(e.MentionDoc.Title)
		}
	}
	return strings.TrimSpace(sb.String())
}
