package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/openintern/openintern/httpapi"
	"github.com/openintern/openintern/store"
)

func newJobsCmd(lookupEnv func(string) (string, bool)) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "jobs",
		Aliases: []string{"job"},
		Short:   "List, show, watch and cancel ingestion jobs",
		Example: "  openintern jobs list\n  openintern jobs watch job_123\n  openintern jobs cancel job_123",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addClientFlags(cmd.PersistentFlags())
	list := &cobra.Command{
		Use: "list", Aliases: []string{"ls"}, Short: "List the scope's jobs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			limit, _ := cmd.Flags().GetInt("limit")
			if limit < 1 || limit > 200 {
				return fmt.Errorf("--limit must be between 1 and 200")
			}
			var resp struct {
				Jobs  []store.Job `json:"jobs"`
				Total int         `json:"total"`
			}
			if err := c.do(cmd.Context(), http.MethodGet, "/api/jobs?"+url.Values{"limit": {fmt.Sprint(limit)}}.Encode(), nil, &resp); err != nil {
				return fmt.Errorf("list jobs: %w", err)
			}
			out := cmd.OutOrStdout()
			if opts.JSON {
				if resp.Jobs == nil {
					resp.Jobs = []store.Job{}
				}
				return writeJSON(out, map[string]any{"jobs": resp.Jobs, "total": resp.Total})
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, newStyle(out, lookupEnv).bold("JOB\tKIND\tSTATUS\tPROGRESS\tCOUNTS\tCREATED"))
			for _, j := range resp.Jobs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", j.ID, j.Kind, j.Status, j.Done, j.Total, jobCounts(j.Counts),
					j.CreatedAt.Local().Format(time.DateTime))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if resp.Total > len(resp.Jobs) {
				fmt.Fprintf(out, "(%d of %d jobs; --limit shows more)\n", len(resp.Jobs), resp.Total)
			}
			return nil
		},
	}
	list.Flags().Int("limit", 20, "how many jobs to list (1-200)")
	show := &cobra.Command{
		Use: "show JOB_ID", Short: "Show a job: status, progress, counts and per-file errors", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var j store.Job
			if err := c.do(cmd.Context(), http.MethodGet, jobPath(args[0]), nil, &j); err != nil {
				return fmt.Errorf("show job %s: %w", args[0], err)
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			printJob(cmd.OutOrStdout(), j)
			return nil
		},
	}
	cancel := &cobra.Command{
		Use: "cancel JOB_ID", Short: "Cancel a job (a running one stops at its current file)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			var j store.Job
			if err := c.do(cmd.Context(), http.MethodPost, jobPath(args[0])+"/cancel", nil, &j); err != nil {
				return fmt.Errorf("cancel job %s: %w", args[0], err)
			}
			if opts.JSON {
				return writeJSON(cmd.OutOrStdout(), j)
			}
			if j.Status == store.JobCancelled {
				fmt.Fprintf(cmd.OutOrStdout(), "%s cancelled\n", j.ID)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: cancel requested; it stops at its current file\n", j.ID)
			}
			return nil
		},
	}
	watch := &cobra.Command{
		Use: "watch JOB_ID", Short: "Follow a job's progress until it ends", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, opts, err := clientFor(cmd, lookupEnv)
			if err != nil {
				return err
			}
			j, err := c.watchJob(cmd.Context(), args[0], cmd.ErrOrStderr(), isTerminal(cmd.ErrOrStderr()) && !opts.JSON)
			if err != nil {
				return err
			}
			return finishJobOutput(cmd, opts, []store.Job{j})
		},
	}
	cmd.AddCommand(list, show, cancel, watch)
	return cmd
}

func jobPath(id string) string { return "/api/jobs/" + url.PathEscape(id) }

func jobCounts(c store.JobCounts) string {
	return fmt.Sprintf("new %d · changed %d · unchanged %d · failed %d", c.New, c.Changed, c.Unchanged, c.Failed)
}

func printJob(w io.Writer, j store.Job) {
	fmt.Fprintf(w, "%s  %s  %s  %d/%d\n", j.ID, j.Kind, j.Status, j.Done, j.Total)
	fmt.Fprintf(w, "  found %d · %s\n", j.Counts.Found, jobCounts(j.Counts))
	if j.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", j.Error)
	}
	for _, e := range j.Errors {
		fmt.Fprintf(w, "  ✗ %s: %s\n", e.Item, e.Message)
	}
	if n := j.Counts.Failed - len(j.Errors); n > 0 {
		fmt.Fprintf(w, "  … and %d more failed\n", n)
	}
}

// finishJobOutput prints the ended jobs and fails when one did not
// complete or a file failed, so scripts can tell.
func finishJobOutput(cmd *cobra.Command, opts clientOptions, jobs []store.Job) error {
	if opts.JSON {
		if err := writeJSON(cmd.OutOrStdout(), jobs); err != nil {
			return err
		}
	} else {
		for _, j := range jobs {
			printJob(cmd.OutOrStdout(), j)
		}
	}
	failed := 0
	for _, j := range jobs {
		if j.Status != store.JobCompleted {
			return fmt.Errorf("job %s %s", j.ID, j.Status)
		}
		failed += j.Counts.Failed
	}
	if failed > 0 {
		return fmt.Errorf("%d file(s) could not be ingested (see above)", failed)
	}
	return nil
}

// watchJob follows a job's SSE stream to its end, drawing a progress bar on
// a terminal and a plain line per change otherwise. A dropped stream is
// opened again (the job is read whole each time, so nothing is missed).
func (c *apiClient) watchJob(ctx context.Context, id string, w io.Writer, tty bool) (store.Job, error) {
	var last store.Job
	show := func(j store.Job) {
		if tty {
			drawJobBar(w, j)
		} else if j.Done != last.Done || j.Status != last.Status {
			fmt.Fprintf(w, "%s %s %d/%d (%s)\n", j.ID, j.Status, j.Done, j.Total, jobCounts(j.Counts))
		}
		last = j
	}
	for attempt := 0; ; attempt++ {
		ended, err := c.readJobStream(ctx, id, show)
		if ended {
			if tty {
				fmt.Fprintln(w)
			}
			return last, nil
		}
		var apiErr *apiError
		if errors.As(err, &apiErr) || ctx.Err() != nil || attempt >= 5 {
			return last, fmt.Errorf("watch job %s: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func drawJobBar(w io.Writer, j store.Job) {
	const width = 24
	filled := width
	if j.Total > 0 {
		filled = width * j.Done / j.Total
	}
	bar := strings.Repeat("█", filled) + strings.Repeat("░", width-filled)
	fmt.Fprintf(w, "\r\033[K%s %d/%d files · %s · %s", bar, j.Done, j.Total, j.Status, jobCounts(j.Counts))
}

// readJobStream reads one connection of a job's stream; ended when its
// end event came.
func (c *apiClient) readJobStream(ctx context.Context, id string, fn func(store.Job)) (ended bool, err error) {
	req, err := c.newRequest(ctx, http.MethodGet, jobPath(id)+"/stream", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return false, c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return false, decodeAPIError(resp.StatusCode, raw)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	event := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "progress":
			var j store.Job
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &j); err != nil {
				return false, fmt.Errorf("decode progress: %w", err)
			}
			fn(j)
		case strings.HasPrefix(line, "data: ") && event == "end":
			return true, nil
		case line == "":
			event = ""
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, errors.New("the stream ended before the job")
}

// ingestFile is a file found for `memory ingest`.
type ingestFile struct {
	path string
	size int64
}

// collectIngestFiles expands paths: files as they are, folders recursively
// without hidden entries, binary files (other than PDF) and files over the
// daemon's per-file limit (each skip said on warn). A path that does not
// exist is an error.
func collectIngestFiles(paths []string, warn io.Writer) ([]ingestFile, error) {
	var out []ingestFile
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			out = append(out, ingestFile{p, fi.Size()})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Size() > httpapi.MaxIngestFileBytes {
				fmt.Fprintf(warn, "skipped %s: %s is over the %s limit\n", path, byteSize(int(info.Size())), byteSize(httpapi.MaxIngestFileBytes))
				return nil
			}
			if binary, err := looksBinary(path); err != nil {
				return err
			} else if binary {
				fmt.Fprintf(warn, "skipped %s: binary\n", path)
				return nil
			}
			out = append(out, ingestFile{path, info.Size()})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// looksBinary: a NUL in the first 8 KiB of a file that is not a PDF.
func looksBinary(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, 8<<10)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return false, err
	}
	buf = buf[:n]
	return !bytes.HasPrefix(buf, []byte("%PDF-")) && bytes.IndexByte(buf, 0) >= 0, nil
}

// ingestBatches splits files into requests under the daemon's upload limit.
func ingestBatches(files []ingestFile) [][]ingestFile {
	const budget = httpapi.MaxUploadBytes - 1<<20 // room for the form's own bytes
	var out [][]ingestFile
	var cur []ingestFile
	var size int64
	for _, f := range files {
		if len(cur) > 0 && (size+f.size > budget || len(cur) >= httpapi.MaxIngestFiles) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, f)
		size += f.size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// uploadFiles sends files (field "files", named by their paths) and
// returns the job the daemon queued.
func (c *apiClient) uploadFiles(ctx context.Context, files []ingestFile, agentID string) (store.Job, error) {
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if agentID != "" {
		if err := mw.WriteField("agent_id", agentID); err != nil {
			return store.Job{}, err
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return store.Job{}, err
		}
		hdr := textproto.MIMEHeader{}
		// The path is the source citations name, so it is sent whole.
		hdr.Set("Content-Disposition", fmt.Sprintf(`form-data; name="files"; filename="%s"`,
			strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(filepath.ToSlash(f.path))))
		hdr.Set("Content-Type", "application/octet-stream")
		pw, err := mw.CreatePart(hdr)
		if err != nil {
			return store.Job{}, err
		}
		if _, err := pw.Write(data); err != nil {
			return store.Job{}, err
		}
	}
	if err := mw.Close(); err != nil {
		return store.Job{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := c.newRequest(ctx, http.MethodPost, "/api/memories/ingest", nil)
	if err != nil {
		return store.Job{}, err
	}
	req.Body = io.NopCloser(&body)
	req.ContentLength = int64(body.Len())
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.http.Do(req)
	if err != nil {
		return store.Job{}, c.transportError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return store.Job{}, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		if resp.StatusCode/100 == 2 {
			return store.Job{}, fmt.Errorf("the daemon answered %d, not a job: is it older than this CLI?", resp.StatusCode)
		}
		return store.Job{}, decodeAPIError(resp.StatusCode, raw)
	}
	var acc struct {
		Job store.Job `json:"job"`
	}
	if err := json.Unmarshal(raw, &acc); err != nil {
		return store.Job{}, fmt.Errorf("decode answer: %w", err)
	}
	return acc.Job, nil
}
