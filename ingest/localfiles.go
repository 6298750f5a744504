package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/openintern/openintern/memory"
	"github.com/openintern/openintern/store"
)

// KindLocalFiles is the kind of a job ingesting uploaded files.
const KindLocalFiles = "local_files"

// LocalFilesParams are a local_files job's parameters; its files are the
// job's inputs, in order.
type LocalFilesParams struct {
	AgentID string `json:"agent_id,omitempty"`
	GroupID string `json:"group_id,omitempty"`
}

// localCheckpoint: the inputs before Next are done.
type localCheckpoint struct {
	Next int `json:"next"`
}

// LocalFiles ingests the files uploaded with a job, one after the other,
// into archival memory. A file that cannot be read is counted failed with
// its error and the batch goes on.
type LocalFiles struct {
	Store     store.JobStore
	Memories  Memories
	Extractor Extractor
}

// Name is KindLocalFiles.
func (LocalFiles) Name() string { return KindLocalFiles }

// Run ingests the job's inputs from its checkpoint on.
func (k LocalFiles) Run(ctx context.Context, j *Job) error {
	var params LocalFilesParams
	if err := json.Unmarshal(j.Params, &params); err != nil {
		return fmt.Errorf("bad parameters: %w", err)
	}
	var cp localCheckpoint
	if _, err := j.Checkpoint(&cp); err != nil {
		return err
	}
	target := Target{Scope: j.Scope, AgentID: params.AgentID, GroupID: params.GroupID}
	j.Update(func(p *store.JobProgress) { p.Total, p.Counts.Found = j.Total, j.Total })
	for i := cp.Next; i < j.Total; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		out, name, err := k.one(ctx, j, target, i)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil && itemFault(err):
			j.ItemFailed(name, err)
		case err != nil:
			return fmt.Errorf("%s: %w", name, err)
		}
		j.Update(func(p *store.JobProgress) {
			p.Done = i + 1
			if err == nil {
				switch out {
				case New:
					p.Counts.New++
				case Changed:
					p.Counts.Changed++
				default:
					p.Counts.Unchanged++
				}
			}
		})
		if err := j.Save(ctx, localCheckpoint{Next: i + 1}); err != nil {
			return err
		}
	}
	return nil
}

func (k LocalFiles) one(ctx context.Context, j *Job, t Target, seq int) (Outcome, string, error) {
	in, err := k.Store.JobInput(ctx, j.Scope, j.ID, seq)
	if err != nil {
		return 0, fmt.Sprintf("file %d", seq+1), err
	}
	doc, err := k.Extractor.Extract(ctx, in.Name, in.Data)
	if err != nil {
		return 0, in.Name, err
	}
	out, err := PutDocument(ctx, k.Memories, t, j.ID, in.Name, ContentHash(in.Data), doc)
	return out, in.Name, err
}

// itemFault reports whether err is the item's own (a file that cannot be
// read or stored, or is gone), so the batch goes on without it; anything
// else (the database or the embedder down) ends the job.
func itemFault(err error) bool {
	return errors.Is(err, ErrUnsupported) || errors.Is(err, ErrNoPDFTool) || errors.Is(err, memory.ErrInvalid) ||
		errors.Is(err, store.ErrQuotaExceeded) || errors.Is(err, store.ErrPermanent) || errors.Is(err, store.ErrNotFound)
}
