package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openintern/openintern/llm/llmtest"
	"github.com/openintern/openintern/store"
)

// The answers of the team's members in these tests: each member's task names
// its role, the lead's asks it to decide.
const (
	researchAnswer = "Research: the notes say the launch is on Tuesday."
	critiqueAnswer = "Critique: Tuesday leaves no time for a rollback drill."
	decisionAnswer = "Decision: launch on Wednesday after one rollback drill."
)

func cliTeamReply(req llmtest.ChatRequest) llmtest.Reply {
	msg := req.LastUserMessage()
	switch {
	case strings.Contains(msg, "as the team's researcher"):
		return llmtest.Reply{Text: researchAnswer}
	case strings.Contains(msg, "as the team's critic"):
		return llmtest.Reply{Text: critiqueAnswer}
	case strings.Contains(msg, "You are the lead"):
		return llmtest.Reply{Text: decisionAnswer}
	}
	return llmtest.Echo(req)
}

// setupCLITeam makes, through the CLI, the roles researcher, critic and lead,
// an agent of each name, and the group "review" with the three as members.
func setupCLITeam(t *testing.T, env []string) {
	t.Helper()
	for _, args := range [][]string{
		{"roles", "create", "researcher", "--prompt", "You dig up facts.", "--tools", "read_file"},
		{"roles", "create", "critic", "--description", "Finds the weak spots", "--no-tools"},
		{"roles", "create", "lead", "--lead"},
		{"agents", "create", "researcher"},
		{"agents", "create", "critic"},
		{"agents", "create", "lead"},
		{"groups", "create", "Launch Review", "--id", "review", "--member", "researcher:researcher", "--member", "critic:critic", "--member", "lead:lead"},
	} {
		if res := runCLI(t, env, args...); res.code != 0 || res.stderr != "" {
			t.Fatalf("openintern %s: exit %d, stderr %q", strings.Join(args, " "), res.code, res.stderr)
		}
	}
}

// lineIndex returns the index of the first line of lines containing s, and
// how many lines contain it.
func lineIndex(lines []string, s string) (first, count int) {
	first = -1
	for i, l := range lines {
		if strings.Contains(l, s) {
			if first < 0 {
				first = i
			}
			count++
		}
	}
	return first, count
}

// assertLinesInOrder checks that each want is on exactly one line of out,
// and that those lines come in the order given.
func assertLinesInOrder(t *testing.T, out string, want ...string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	prev := -1
	for _, w := range want {
		i, n := lineIndex(lines, w)
		if n != 1 {
			t.Fatalf("%q is on %d lines, want 1:\n%s", w, n, out)
		}
		if i <= prev {
			t.Fatalf("%q (line %d) is not after line %d %q:\n%s", w, i, prev, lines[prev], out)
		}
		prev = i
	}
}

// teamStreamLines are the lines `groups run --stream` prints for a serial run
// of the review group, in order.
var teamStreamLines = []string{
	"▶ serial run · lead lead · members researcher, critic",
	"→ task to researcher (researcher)",
	"researcher (researcher) proposes: " + researchAnswer,
	"→ task to critic (critic)",
	"critic (critic) proposes: " + critiqueAnswer,
	"→ task to lead (lead): decide",
	"★ decision by lead (lead): " + decisionAnswer,
	"✓ completed",
}

func TestCLIRolesCreateAndList(t *testing.T) {
	d, _ := cliDaemon(t)
	env := cliEnv(d, "cli", "rita")

	res := runCLI(t, env, "roles", "list")
	if res.code != 0 || !strings.Contains(res.stdout, "no roles yet") {
		t.Fatalf("roles list (empty): %+v", res)
	}
	res = runCLI(t, env, "roles", "create", "researcher", "--prompt", "You dig up facts.", "--tools", "read_file,memory_search")
	if res.code != 0 || !strings.Contains(res.stdout, "created role researcher (researcher, tools: read_file,memory_search)") {
		t.Fatalf("roles create researcher: %+v", res)
	}
	res = runCLI(t, env, "roles", "create", "Devil's Advocate", "--id", "critic", "--description", "Finds the weak spots", "--no-tools", "--model", "small-model")
	if res.code != 0 || !strings.Contains(res.stdout, "created role critic (Devil's Advocate, tools: (none))") {
		t.Fatalf("roles create critic: %+v", res)
	}
	res = runCLI(t, env, "roles", "create", "lead", "--lead", "--json")
	var lead roleView
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &lead) != nil || lead.ID != "lead" || !lead.IsLead || lead.AllowedTools != nil {
		t.Fatalf("roles create lead --json: %+v", res)
	}

	res = runCLI(t, env, "roles", "list", "--json")
	var list struct {
		Roles []roleView `json:"roles"`
		Total int        `json:"total"`
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil || list.Total != 3 || len(list.Roles) != 3 {
		t.Fatalf("roles list --json: %+v", res)
	}
	byID := map[string]roleView{}
	for _, r := range list.Roles {
		byID[r.ID] = r
	}
	if r := byID["researcher"]; r.SystemPrompt != "You dig up facts." || !reflect.DeepEqual(r.AllowedTools, []string{"read_file", "memory_search"}) || r.IsLead {
		t.Fatalf("researcher role: %+v", r)
	}
	// --no-tools is an empty list (no tools), not null (the agent's tools).
	if r := byID["critic"]; r.Name != "Devil's Advocate" || r.Description != "Finds the weak spots" || r.Model != "small-model" || r.AllowedTools == nil || len(r.AllowedTools) != 0 {
		t.Fatalf("critic role: %+v", r)
	}
	if r := byID["lead"]; !r.IsLead {
		t.Fatalf("lead role: %+v", r)
	}

	res = runCLI(t, env, "roles", "list")
	lines := strings.Split(res.stdout, "\n")
	if res.code != 0 || !strings.HasPrefix(lines[0], "ROLE") {
		t.Fatalf("roles list: %+v", res)
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "lead ") != strings.Contains(l, "★") {
			t.Fatalf("only the lead role is marked ★: %q\n%s", l, res.stdout)
		}
	}
	if i, n := lineIndex(lines, "critic"); n != 1 || !strings.Contains(lines[i], "small-model") || !strings.Contains(lines[i], "(none)") {
		t.Fatalf("critic line of roles list:\n%s", res.stdout)
	}

	assertOneLineError(t, runCLI(t, env, "roles", "create", "researcher"), "role researcher already exists (in org cli, user rita)")
	assertOneLineError(t, runCLI(t, env, "roles", "create", "x", "--tools", "a", "--no-tools"), "[no-tools tools] were all set")
	assertOneLineError(t, runCLI(t, env, "roles", "create", "x", "--id", "Not An Id"), "role_id must match")
	assertOneLineError(t, runCLI(t, env, "roles", "create"), "accepts 1 arg(s)")
	assertOneLineError(t, runCLI(t, env, "roles", "list", "--bogus"), "unknown flag: --bogus")
	// Another scope has no roles.
	res = runCLI(t, env, "roles", "list", "--json", "--org", "other")
	if res.code != 0 || !strings.Contains(res.stdout, `"total":0`) {
		t.Fatalf("roles list in another scope: %+v", res)
	}
}

func TestCLIGroupsCreateShowRunBlackboard(t *testing.T) {
	d, srv := cliDaemon(t)
	srv.SetDefault(cliTeamReply)
	env := cliEnv(d, "cli", "gus")
	setupCLITeam(t, env)

	// create, list, show
	res := runCLI(t, env, "groups", "list", "--json")
	var list struct {
		Groups []groupSummary `json:"groups"`
		Total  int            `json:"total"`
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil || list.Total != 1 || len(list.Groups) != 1 ||
		list.Groups[0].ID != "review" || list.Groups[0].Name != "Launch Review" || list.Groups[0].Members != 3 {
		t.Fatalf("groups list --json: %+v", res)
	}
	res = runCLI(t, env, "groups", "list")
	if lines := strings.Split(res.stdout, "\n"); res.code != 0 || !strings.HasPrefix(lines[0], "GROUP") || len(strings.Fields(lines[1])) < 4 ||
		strings.Fields(lines[1])[0] != "review" || !strings.Contains(lines[1], "Launch Review  3") {
		t.Fatalf("groups list: %+v", res)
	}

	res = runCLI(t, env, "groups", "show", "review")
	if res.code != 0 || !hasLinePrefix(res.stdout, "lead     lead") {
		t.Fatalf("groups show: %+v", res)
	}
	lines := strings.Split(res.stdout, "\n")
	header, _ := lineIndex(lines, "MEMBER")
	if header < 0 || len(lines) < header+4 {
		t.Fatalf("groups show has no member table:\n%s", res.stdout)
	}
	for i, want := range []string{"researcher", "critic", "lead"} {
		row := strings.Fields(lines[header+1+i])
		if len(row) < 2 || row[0] != want || row[1] != want {
			t.Fatalf("member row %d is %q, want %s in role %s:\n%s", i, lines[header+1+i], want, want, res.stdout)
		}
		if isLead := strings.Contains(lines[header+1+i], "★ lead"); isLead != (want == "lead") {
			t.Fatalf("member %s marked lead: %v:\n%s", want, isLead, res.stdout)
		}
	}
	res = runCLI(t, env, "groups", "show", "review", "--json")
	var g groupDetail
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &g) != nil || g.LeadAgentID != "lead" || g.MemberCount != 3 || len(g.Members) != 3 ||
		g.Members[0].AgentID != "researcher" || g.Members[2].RoleID != "lead" || !g.Members[2].IsLead || g.Members[0].IsLead {
		t.Fatalf("groups show --json: %+v", res)
	}

	// run --stream: tasks, proposals and the decision, in order.
	res = runCLI(t, env, "groups", "run", "review", "Should we launch on Tuesday?", "--stream")
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("groups run --stream: exit %d, stderr %q", res.code, res.stderr)
	}
	assertLinesInOrder(t, res.stdout, teamStreamLines...)

	// run --stream --json: the events as the API has them, ending with run.completed.
	res = runCLI(t, env, "groups", "run", "review", "And on Thursday?", "--stream", "--json")
	evs := decodeLines(t, res.stdout)
	if res.code != 0 || len(evs) == 0 || evs[len(evs)-1].Type != "run.completed" {
		t.Fatalf("groups run --stream --json: exit %d, events %v", res.code, types(evs))
	}
	assertOrder(t, types(evs), "run.started", "message.task", "message.proposal", "message.task", "message.proposal", "message.task", "message.decision", "run.completed")
	want := d.client("cli", "gus").events(evs[0].RunID)
	if !reflect.DeepEqual(evs, want) {
		t.Fatalf("streamed events differ from the stored ones:\n got %v\nwant %v", types(evs), types(want))
	}

	// run without --stream prints the run id; the run completes on its own.
	res = runCLI(t, env, "groups", "run", "review", "And in parallel?", "--mode", "parallel", "--session", "par", "--json")
	var created groupRunResponse
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &created) != nil || !strings.HasPrefix(created.RunID, "run_") ||
		created.GroupID != "review" || created.Mode != "parallel" || created.SessionKey != "par" {
		t.Fatalf("groups run --json: %+v", res)
	}
	if run := d.client("cli", "gus").waitRun(created.RunID, 20*time.Second); run.Status != store.RunCompleted || run.Output != decisionAnswer {
		t.Fatalf("parallel group run: %s %q", run.Status, run.Output)
	}
	res = runCLI(t, env, "groups", "run", "review", "Once more")
	if res.code != 0 || !strings.Contains(res.stdout, " (group review, serial)") || !strings.Contains(res.stdout, "follow it with: openintern tail run_") {
		t.Fatalf("groups run: %+v", res)
	}
	runID := strings.Fields(res.stdout)[0]
	if run := d.client("cli", "gus").waitRun(runID, 20*time.Second); run.Status != store.RunCompleted {
		t.Fatalf("group run %s: %s", runID, run.Status)
	}

	// blackboard: four runs, each with two proposals and a decision.
	res = runCLI(t, env, "groups", "blackboard", "review", "--limit", "3")
	lines = strings.Split(strings.TrimRight(res.stdout, "\n"), "\n")
	if res.code != 0 || len(lines) != 7 || !strings.Contains(lines[0], " decision lead ") || lines[1] != "  "+decisionAnswer ||
		lines[6] != "3 of 12 entries, newest first; --limit N for more" {
		t.Fatalf("groups blackboard: %+v", res)
	}
	res = runCLI(t, env, "groups", "blackboard", "review", "--kind", "decision", "--json")
	var board struct {
		Entries []boardEntry `json:"entries"`
		Total   int          `json:"total"`
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &board) != nil || board.Total != 4 || len(board.Entries) != 4 {
		t.Fatalf("groups blackboard --kind decision --json: %+v", res)
	}
	for _, e := range board.Entries {
		if e.Kind != "decision" || e.Author != "lead" || e.Text != decisionAnswer || !strings.HasPrefix(e.ID, "mem_") {
			t.Fatalf("decision entry: %+v", e)
		}
	}
	res = runCLI(t, env, "groups", "blackboard", "review", "--author", "critic", "--json")
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &board) != nil || board.Total != 4 || board.Entries[0].Text != critiqueAnswer {
		t.Fatalf("groups blackboard --author critic: %+v", res)
	}

	res = runCLI(t, env, "groups", "blackboard", "review", "--post", "The rollback budget is capped at ten thousand euros", "--kind", "fact")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "mem_") || !strings.Contains(res.stdout, "posted (fact by user:gus)") {
		t.Fatalf("groups blackboard --post: %+v", res)
	}
	res = runCLI(t, env, "groups", "blackboard", "review", "--search", "rollback budget euros", "--json")
	var found struct {
		Results []boardHit `json:"results"`
	}
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &found) != nil || len(found.Results) == 0 ||
		found.Results[0].Kind != "fact" || found.Results[0].Author != "user:gus" || !strings.Contains(found.Results[0].Snippet, "ten thousand euros") {
		t.Fatalf("groups blackboard --search --json: %+v", res)
	}
	res = runCLI(t, env, "groups", "blackboard", "review", "--search", "rollback budget euros")
	if res.code != 0 || !strings.Contains(strings.SplitN(res.stdout, "\n", 2)[0], " fact user:gus ") {
		t.Fatalf("groups blackboard --search: %+v", res)
	}
	res = runCLI(t, env, "groups", "blackboard", "review", "--kind", "todo")
	if res.code != 0 || strings.TrimSpace(res.stdout) != "no entries match" {
		t.Fatalf("groups blackboard --kind todo: %+v", res)
	}

	// Errors are one line with a non-zero exit.
	assertOneLineError(t, runCLI(t, env, "groups", "show", "nope"), "group nope not found (in org cli, user gus)")
	assertOneLineError(t, runCLI(t, env, "groups", "show", "Not An Id!"), "group Not An Id! not found")
	assertOneLineError(t, runCLI(t, env, "groups", "run", "nope", "hello", "--stream"), "group nope not found")
	assertOneLineError(t, runCLI(t, env, "groups", "blackboard", "nope"), "group nope not found")
	assertOneLineError(t, runCLI(t, env, "groups", "show", "review", "--org", "other"), "group review not found (in org other")
	assertOneLineError(t, runCLI(t, env, "groups", "run", "review", "hello", "--bogus"), "unknown flag: --bogus")
	assertOneLineError(t, runCLI(t, env, "groups", "run", "review", "hello", "--mode", "sideways"), "--mode must be serial or parallel")
	assertOneLineError(t, runCLI(t, env, "groups", "run", "review"), "accepts 2 arg(s)")
	assertOneLineError(t, runCLI(t, env, "groups", "blackboard", "review", "--post", "x", "--search", "y"), "were all set")
	assertOneLineError(t, runCLI(t, env, "groups", "blackboard", "review", "--kind", "rumour"), "kind must be fact, proposal, decision or todo")
	assertOneLineError(t, runCLI(t, env, "groups", "blackboard", "review", "--limit", "0"), "--limit must be between 1 and 200")
	assertOneLineError(t, runCLI(t, env, "groups", "create", "x", "--member", "researcher"), "a member is AGENT:ROLE")
	assertOneLineError(t, runCLI(t, env, "groups", "create", "x", "--member", "ghost:researcher"), `agent "ghost" does not exist`)
	assertOneLineError(t, runCLI(t, env, "groups", "create", "x", "--member", "researcher:lead", "--member", "critic:lead"), "exactly one member with a lead role")
	assertOneLineError(t, runCLI(t, env, "groups", "create", "Launch Review", "--id", "review"), "group review already exists")
	// None of the failed creates left a group behind.
	res = runCLI(t, env, "groups", "list", "--json")
	if res.code != 0 || json.Unmarshal([]byte(res.stdout), &list) != nil || list.Total != 1 {
		t.Fatalf("groups after failed creates: %+v", res)
	}
}

func TestCLIGroupsAddMemberAndCompletion(t *testing.T) {
	d, srv := cliDaemon(t)
	srv.SetDefault(cliTeamReply)
	env := cliEnv(d, "cli", "ada")
	setupCLITeam(t, env)

	res := runCLI(t, env, "groups", "create", "Night Shift", "--id", "night")
	if res.code != 0 || !strings.Contains(res.stdout, "created group night (Night Shift) with 0 members") ||
		!strings.Contains(res.stdout, "openintern groups add-member night AGENT:ROLE") {
		t.Fatalf("groups create without members: %+v", res)
	}
	// A group without members cannot run.
	assertOneLineError(t, runCLI(t, env, "groups", "run", "night", "hello"), "lead role")

	res = runCLI(t, env, "groups", "add-member", "night", "critic:critic", "lead:lead")
	if res.code != 0 || res.stdout != "added critic to group night as critic\nadded lead to group night as lead, the lead\n" {
		t.Fatalf("groups add-member: %+v", res)
	}
	assertOneLineError(t, runCLI(t, env, "groups", "add-member", "night", "critic:critic"), "already a member")
	assertOneLineError(t, runCLI(t, env, "groups", "add-member", "night", "researcher:lead"), "already has a lead")
	assertOneLineError(t, runCLI(t, env, "groups", "add-member", "nope", "critic:critic"), "group nope not found")

	res = runCLI(t, env, "groups", "run", "night", "Anything to report?", "--stream")
	if res.code != 0 {
		t.Fatalf("groups run of the added members: %+v", res)
	}
	assertLinesInOrder(t, res.stdout, "→ task to critic (critic)", "critic (critic) proposes: "+critiqueAnswer, "★ decision by lead (lead): "+decisionAnswer, "✓ completed")
	if strings.Contains(res.stdout, "researcher") {
		t.Fatalf("the night group has no researcher:\n%s", res.stdout)
	}

	// Completion offers the scope's group ids, and the fixed flag values.
	res = runCLI(t, env, "__complete", "groups", "show", "")
	if res.code != 0 || !hasLinePrefix(res.stdout, "night\tNight Shift") || !hasLinePrefix(res.stdout, "review\tLaunch Review") {
		t.Fatalf("group id completion: %+v", res)
	}
	res = runCLI(t, env, "__complete", "groups", "run", "ni")
	if res.code != 0 || !hasLinePrefix(res.stdout, "night") || hasLinePrefix(res.stdout, "review") {
		t.Fatalf("group id completion with a prefix: %+v", res)
	}
	res = runCLI(t, env, "__complete", "groups", "run", "review", "task", "--mode", "")
	if res.code != 0 || !hasLinePrefix(res.stdout, "serial") || !hasLinePrefix(res.stdout, "parallel") {
		t.Fatalf("--mode completion: %+v", res)
	}
	res = runCLI(t, env, "__complete", "groups", "blackboard", "review", "--kind", "")
	if res.code != 0 || !hasLinePrefix(res.stdout, "decision") {
		t.Fatalf("--kind completion: %+v", res)
	}
}

func TestCLIGroupsRunStreamResumesAfterDroppedConnection(t *testing.T) {
	d, srv := cliDaemon(t)
	srv.SetDefault(cliTeamReply)
	env := cliEnv(d, "cli", "dora")
	setupCLITeam(t, env)

	proxy := &dropProxy{target: d.URL()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: proxy, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })

	res := runCLI(t, cliEnv(d, "cli", "dora", "OPENINTERN_URL=http://"+ln.Addr().String()), "groups", "run", "review", "Should we launch on Tuesday?", "--stream")
	if res.code != 0 {
		t.Fatalf("groups run --stream through a dropping proxy: exit %d", res.code)
	}
	// Every line once, in order, although the first connection was cut.
	assertLinesInOrder(t, res.stdout, teamStreamLines...)
	proxy.mu.Lock()
	defer proxy.mu.Unlock()
	if proxy.drops != 1 || len(proxy.resume) < 2 || proxy.resume[0] != "" || proxy.resume[1] == "" {
		t.Fatalf("stream requests had Last-Event-ID %q, want \"\" then the first event's id", proxy.resume)
	}
}

func TestCLIGroupsRunCtrlCCancelsRun(t *testing.T) {
	d, srv := cliDaemon(t)
	// The researcher answers slowly, so the group run is still going when
	// the user presses Ctrl-C.
	srv.SetDefault(func(req llmtest.ChatRequest) llmtest.Reply {
		r := cliTeamReply(req)
		r.Text = strings.Repeat("slowly ", 100) + r.Text
		r.ChunkDelay = 50 * time.Millisecond
		return r
	})
	env := cliEnv(d, "cli", "carl")
	setupCLITeam(t, env)

	cmd := exec.Command(daemonBinary(t), "groups", "run", "review", "take your time", "--stream", "--json")
	cmd.Env = env
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the first member has its task.
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var runID string
	for sc.Scan() {
		var ev store.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("stream line %q: %v", sc.Text(), err)
		}
		if ev.Type == "message.task" {
			runID = ev.RunID
			break
		}
	}
	if runID == "" {
		_ = cmd.Wait()
		t.Fatalf("no message.task before the stream ended; stderr %q", stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	_ = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit code %d after Ctrl-C, want 130; stderr %q", code, stderr.String())
	}
	if got := strings.TrimRight(stderr.String(), "\n"); got != "openintern: interrupted; run "+runID+" cancelled" {
		t.Fatalf("stderr %q", stderr.String())
	}
	c := d.client("cli", "carl")
	if run := c.waitRun(runID, 20*time.Second); run.Status != store.RunCancelled {
		t.Fatalf("group run is %s after Ctrl-C, want cancelled", run.Status)
	}
	// The member at work was cancelled with it, and the lead never got a task.
	for _, ev := range c.events(runID) {
		if ev.Type == "message.decision" || (ev.Type == "message.task" && strings.Contains(string(ev.Payload), `"purpose":"decide"`)) {
			t.Fatalf("the cancelled group run went on to %s", ev.Type)
		}
	}
	var runs struct {
		Runs []store.Run `json:"runs"`
	}
	c.must(http.StatusOK, "GET", "/api/runs?agent_id=researcher", nil, &runs)
	if len(runs.Runs) != 1 || runs.Runs[0].ParentRunID != runID {
		t.Fatalf("researcher runs: %+v", runs.Runs)
	}
	if r := c.waitRun(runs.Runs[0].ID, 20*time.Second); r.Status != store.RunCancelled {
		t.Fatalf("the researcher's run is %s, want cancelled", r.Status)
	}
}
