package web_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// selectValue picks an option of a <select> the way a person does: the value
// changes and the page hears "change".
func (p *page) selectValue(sel, value string) {
	p.t.Helper()
	p.waitJS(`document.querySelector(`+jsString(sel+` option[value="`+value+`"]`)+`)`, "option "+value+" of "+sel)
	p.js(`(() => { const s = document.querySelector(` + jsString(sel) + `); s.value = ` + jsString(value) + `; s.dispatchEvent(new Event('change', { bubbles: true })); })()`)
}

// shot takes a screenshot without the toasts of earlier steps.
func (p *page) shot(name string) {
	p.t.Helper()
	p.js(`document.getElementById('toasts')?.replaceChildren()`)
	p.screenshot(name)
}

// TestTeamsInBrowser builds a team on the Teams page, runs it, and watches
// the decision arrive on an open Blackboard page.
func TestTeamsInBrowser(t *testing.T) {
	start := time.Now()
	// A short delay between streamed words: a run takes a second or two, long
	// enough to be seen going, short enough for a test.
	c := startConsoleWith(t, 8*time.Millisecond)
	b := startBrowser(t)
	const acme = "?org_id=acme&user_id=alice"
	var runID string

	t.Run("teams page creates roles, a group and members, and runs the team", func(t *testing.T) {
		p := b.page(t, c)
		p.open("/orchestrator" + acme)
		p.waitJS(`document.querySelector('.page-teams h1')?.textContent === 'Teams' && document.querySelector('#roles-empty') && document.querySelector('#groups-empty') && document.querySelector('#team-intro')`, "the empty Teams page")
		if p.str(`document.querySelector('a[data-nav=teams]').getAttribute('aria-current') || ''`) != "page" {
			t.Fatal("the Teams tab is not marked current")
		}

		// Three roles: researcher (inherits the agent's tools), critic (only
		// read_file) and the lead (no tools).
		// (The researcher keeps the form's default, inherit, after a reset.)
		for _, r := range []struct{ name, id, desc, tools, list string }{
			{"Critic 评审", "critic", "looks for holes", "only", "read_file"},
			{"Researcher 研究员", "researcher", "finds facts and sources", "", ""},
			{"Lead 组长", "lead", "weighs the proposals and decides", "none", ""},
		} {
			p.run(chromedp.Click(chromedp.CSS("#role-new")))
			p.waitJS(`!document.querySelector('#role-create').closest('.create-box').hidden`, "the role form")
			p.run(chromedp.SetValue(chromedp.CSS(`#role-create input[name=name]`), r.name),
				chromedp.SetValue(chromedp.CSS(`#role-create input[name=role_id]`), r.id),
				chromedp.SetValue(chromedp.CSS(`#role-create input[name=description]`), r.desc))
			if r.tools != "" {
				p.run(chromedp.Click(chromedp.CSS(`#role-create input.tools-mode[value=` + r.tools + `]`)))
			}
			if r.list != "" {
				p.run(chromedp.SetValue(chromedp.CSS(`#role-create input[name=tools]`), r.list))
			}
			if r.id == "lead" {
				p.run(chromedp.Click(chromedp.CSS(`#role-create input[name=is_lead]`)))
			}
			p.run(chromedp.Click(chromedp.CSS(`#role-create button[type=submit]`)))
			p.waitJS(`document.querySelector('.role-row[data-role-id=`+r.id+`] .team-name')?.textContent === `+jsString(r.name), "the role "+r.id)
		}
		p.waitJS(`document.querySelector('.role-row[data-role-id=lead]').dataset.lead === 'true' && document.querySelector('.role-row[data-role-id=lead] .badge-lead')`, "the lead badge")
		rolesInAPI := func() map[string]string {
			var roles struct {
				Roles []struct {
					RoleID       string    `json:"role_id"`
					Description  string    `json:"description"`
					IsLead       bool      `json:"is_lead"`
					AllowedTools *[]string `json:"allowed_tools"`
				} `json:"roles"`
			}
			c.call(t, "acme", "alice", "GET", "/api/roles", nil, &roles)
			got := map[string]string{}
			for _, r := range roles.Roles {
				tools := "inherit"
				if r.AllowedTools != nil {
					tools = "[" + strings.Join(*r.AllowedTools, ",") + "]"
				}
				got[r.RoleID] = fmt.Sprintf("lead=%v tools=%s desc=%s", r.IsLead, tools, r.Description)
			}
			return got
		}
		checkRoles := func(want map[string]string) {
			t.Helper()
			got := rolesInAPI()
			for id, w := range want {
				if got[id] != w {
					t.Fatalf("role %s in the API: %q, want %q (all: %v)", id, got[id], w, got)
				}
			}
		}
		checkRoles(map[string]string{
			"researcher": "lead=false tools=inherit desc=finds facts and sources",
			"critic":     "lead=false tools=[read_file] desc=looks for holes",
			"lead":       "lead=true tools=[] desc=weighs the proposals and decides",
		})

		// Edit a role: no tools, a new description; then back to inheriting.
		researcher := `.role-row[data-role-id=researcher]`
		p.run(chromedp.Click(chromedp.CSS(researcher + ` .role-edit`)))
		p.waitJS(`document.querySelector('`+researcher+` .role-edit-form input[name=name]')?.value === 'Researcher 研究员' && document.querySelector('`+researcher+` .role-edit-form input.tools-mode[value=inherit]').checked`, "the edit form, filled in")
		p.run(chromedp.SetValue(chromedp.CSS(researcher+` .role-edit-form input[name=description]`), "finds facts, sources and dates"),
			chromedp.Click(chromedp.CSS(researcher+` .role-edit-form input.tools-mode[value=none]`)),
			chromedp.Click(chromedp.CSS(researcher+` .role-edit-form button[type=submit]`)))
		p.waitJS(`document.querySelector('`+researcher+` .role-tools')?.textContent === 'tools: none' && document.querySelector('`+researcher+` .role-desc')?.textContent === 'finds facts, sources and dates'`, "the edited role")
		checkRoles(map[string]string{"researcher": "lead=false tools=[] desc=finds facts, sources and dates"})
		p.run(chromedp.Click(chromedp.CSS(researcher + ` .role-edit`)))
		p.waitJS(`document.querySelector('`+researcher+` .role-edit-form input.tools-mode[value=none]')?.checked`, "the edit form again")
		p.run(chromedp.Click(chromedp.CSS(researcher+` .role-edit-form input.tools-mode[value=inherit]`)),
			chromedp.Click(chromedp.CSS(researcher+` .role-edit-form button[type=submit]`)))
		p.waitJS(`document.querySelector('`+researcher+` .role-tools')?.textContent === 'tools: as the agent'`, "the role inheriting again")
		checkRoles(map[string]string{"researcher": "lead=false tools=inherit desc=finds facts, sources and dates"})

		// A group.
		p.run(chromedp.Click(chromedp.CSS("#group-new")),
			chromedp.SetValue(chromedp.CSS(`#group-create input[name=name]`), "Launch team 发布小组"),
			chromedp.SetValue(chromedp.CSS(`#group-create input[name=group_id]`), "launch"),
			chromedp.SetValue(chromedp.CSS(`#group-create input[name=description]`), "Plans the product launch."),
			chromedp.Click(chromedp.CSS(`#group-create button[type=submit]`)))
		p.waitJS(`document.querySelector('#group-detail').dataset.groupId === 'launch' && document.querySelector('#group-title')?.textContent === 'Launch team 发布小组' && document.querySelector('#members-empty')`, "the new, empty group open")
		p.waitJS(`document.querySelector('.group-row[data-group-id=launch].selected') && location.search.includes('group=launch')`, "the group selected and in the URL")

		// Three members, each a new agent made from the member form.
		for _, m := range []struct{ name, id, role string }{
			{"Ada", "ada", "researcher"}, {"Ben", "ben", "critic"}, {"Cleo 克莉奥", "cleo", "lead"},
		} {
			p.selectValue("#member-agent", "__new__")
			p.waitJS(`!document.querySelector('#member-add .member-new').hidden`, "the new agent fields")
			p.run(chromedp.SetValue(chromedp.CSS("#member-new-name"), m.name),
				chromedp.SetValue(chromedp.CSS("#member-new-id"), m.id))
			p.selectValue("#member-role", m.role)
			p.run(chromedp.Click(chromedp.CSS("#member-add-btn")))
			p.waitJS(`document.querySelector('.member-row[data-agent-id=`+m.id+`]')?.dataset.roleId === `+jsString(m.role), "member "+m.id)
		}
		p.waitJS(`document.querySelector('.member-row[data-agent-id=cleo]').dataset.lead === 'true' && document.querySelector('.member-row[data-agent-id=cleo] .badge-lead') && !document.querySelector('.member-row[data-agent-id=ada] .badge-lead')`, "cleo marked as the lead")
		if n := p.str(`String(document.querySelectorAll('.group-row[data-group-id=launch]').length && document.querySelector('.group-row[data-group-id=launch]').textContent.includes('3 members'))`); n != "true" {
			t.Fatalf("the group list does not say 3 members: %s", p.str(`document.querySelector('#group-list').innerText`))
		}

		// A second lead is refused in words.
		p.selectValue("#member-agent", "main")
		p.selectValue("#member-role", "lead")
		p.run(chromedp.Click(chromedp.CSS("#member-add-btn")))
		p.waitJS(`document.querySelector('#member-add .error-box')?.textContent.includes('already has a lead')`, "the lead_exists error")
		if code := p.str(`document.querySelector('#member-add .error-code').textContent`); !strings.Contains(code, "409") || !strings.Contains(code, "lead_exists") {
			t.Fatalf("error code line %q", code)
		}

		// Changing a member's role, and back.
		p.selectValue(`.member-row[data-agent-id=ben] .member-role`, "researcher")
		p.waitJS(`document.querySelector('.member-row[data-agent-id=ben]')?.dataset.roleId === 'researcher'`, "ben as researcher")
		p.selectValue(`.member-row[data-agent-id=ben] .member-role`, "critic")
		p.waitJS(`document.querySelector('.member-row[data-agent-id=ben]')?.dataset.roleId === 'critic'`, "ben as critic again")

		// The blackboard, open in another tab before the run starts.
		bb := b.page(t, c)
		bb.open("/blackboard/launch" + acme)
		bb.waitJS(`document.querySelector('#bb-empty') && document.querySelector('#bb-live')?.dataset.state === 'live' && document.querySelector('#bb-group-name').textContent === 'Launch team 发布小组'`, "the empty, live blackboard")
		bb.js(`window.__sameDocument = 'yes'`)

		// Start a run and watch it as a conversation.
		p.run(chromedp.SetValue(chromedp.CSS("#team-run-input"), "Pick the launch day for project 青鸟 next week."),
			chromedp.Click(chromedp.CSS("#team-run-start")))
		p.waitJS(`document.querySelector('#team-run-panel')?.dataset.runId?.startsWith('run_') && !document.querySelector('#team-run-panel').hidden`, "the run panel")
		runID = p.str(`document.querySelector('#team-run-panel').dataset.runId`)
		p.waitJS(`document.querySelector('#team-run-live')?.dataset.state === 'live' || document.querySelector('#team-run-panel').dataset.status === 'completed'`, "the run followed live")
		p.waitJS(`document.querySelector('.conv-msg[data-type="run.started"]')?.textContent.includes('青鸟') && document.querySelector('.conv-msg[data-type="message.task"]')`, "the task handed out")
		p.waitJS(`document.querySelector('#team-run-panel').dataset.status === 'completed' && document.querySelector('.conv-msg[data-type="message.decision"]')`, "the decision on the Teams page")
		if n := p.str(`String(document.querySelectorAll('.conv-msg[data-type="message.proposal"]').length)`); n != "2" {
			t.Fatalf("%s proposals in the conversation, want 2", n)
		}
		if who := p.str(`document.querySelector('.conv-msg[data-type="message.decision"] .who-role').textContent`); who != "Lead 组长" {
			t.Fatalf("the decision is from %q", who)
		}
		if order := p.str(`[...document.querySelectorAll('#team-conv .conv-msg')].map(e => e.dataset.type).join(' ')`); !strings.HasPrefix(order, "run.started message.task message.proposal message.task message.proposal message.task message.decision") {
			t.Fatalf("conversation order: %s", order)
		}
		p.waitJS(`document.querySelector('.progress-item[data-agent-id=cleo]')?.dataset.state === 'decided' && document.querySelector('.progress-item[data-agent-id=ada]').dataset.state === 'proposed'`, "the progress of each member")
		p.waitJS(`document.querySelector('.group-run-row[data-run-id="`+runID+`"]')?.dataset.status === 'completed'`, "the run in the recent runs")
		p.waitJS(`document.querySelector('#group-stats .stat[data-stat=completed] dd')?.textContent === '1' && document.querySelector('#group-stats .stat[data-stat=blackboard] dd')?.textContent === '3'`, "the group stats")
		p.shot("teams")

		// The decision reached the open blackboard without a reload, on top,
		// above the two proposals.
		bb.waitJS(`document.querySelector('#bb-list .bb-entry')?.dataset.kind === 'decision' && document.querySelectorAll('#bb-list .bb-entry').length === 3`, "the decision live on the blackboard")
		if bb.str(`window.__sameDocument || ''`) != "yes" {
			t.Fatal("the blackboard page was reloaded")
		}
		if bb.str(`document.querySelector('.bb-entry[data-kind=decision]').classList.contains('bb-decision-entry') ? 'y' : 'n'`) != "y" {
			t.Fatal("the decision does not stand out")
		}
		bb.shot("blackboard")

		// The stored conversation, from a link.
		p.open("/orchestrator" + acme + "&group=launch&run=" + runID)
		p.waitJS(`document.querySelector('#team-run-panel')?.dataset.status === 'completed' && document.querySelector('#team-run-live')?.dataset.state === 'ended' && document.querySelectorAll('.conv-msg[data-type="message.proposal"]').length === 2 && document.querySelector('.conv-msg[data-type="message.decision"]')`, "the run from a link")

		// On a phone-sized screen.
		p.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		p.open("/orchestrator" + acme + "&group=launch&run=" + runID)
		p.waitJS(`document.querySelector('.conv-msg[data-type="message.decision"]') && document.querySelector('.member-row[data-agent-id=cleo]')`, "the team on a phone")
		if w := p.str(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("the Teams page is %s px wide on a 390 px screen", w)
		}
		p.shot("teams-phone")
	})

	t.Run("blackboard filters, posts and searches", func(t *testing.T) {
		if runID == "" {
			t.Skip("needs the team run")
		}
		p := b.page(t, c)
		p.open("/blackboard/launch" + acme)
		p.waitJS(`document.querySelectorAll('#bb-list .bb-entry').length === 3 && document.querySelector('#bb-count').textContent === '3 entries'`, "three entries")
		if first := p.str(`document.querySelector('#bb-list .bb-entry').dataset.kind`); first != "decision" {
			t.Fatalf("newest entry is a %s", first)
		}
		// Kind.
		p.run(chromedp.Click(chromedp.CSS(`.bb-kind-btn[data-kind=proposal]`)))
		p.waitJS(`document.querySelector('#bb-list').dataset.kind === 'proposal' && document.querySelectorAll('#bb-list .bb-entry').length === 2 && [...document.querySelectorAll('#bb-list .bb-entry')].every(e => e.dataset.kind === 'proposal')`, "the proposals only")
		p.waitJS(`location.search.includes('kind=proposal') && document.querySelector('.bb-kind-btn[data-kind=proposal]').getAttribute('aria-pressed') === 'true'`, "the kind in the URL")
		// Author, with the kind.
		p.waitJS(`document.querySelector('#bb-author option[value=ada]')?.textContent.startsWith('Researcher')`, "the members as authors")
		p.selectValue("#bb-author", "ada")
		p.waitJS(`document.querySelector('#bb-list').dataset.author === 'ada' && document.querySelectorAll('#bb-list .bb-entry').length === 1 && document.querySelector('#bb-list .bb-entry').dataset.author === 'ada'`, "ada's proposal only")
		p.selectValue("#bb-author", "cleo")
		p.waitJS(`document.querySelector('#bb-list').dataset.author === 'cleo' && document.querySelector('#bb-empty')`, "no proposals by the lead")
		// A shared link shows the same view.
		p.open("/blackboard/launch" + acme + "&kind=decision&author=cleo")
		p.waitJS(`document.querySelectorAll('#bb-list .bb-entry').length === 1 && document.querySelector('#bb-list .bb-entry').dataset.kind === 'decision' && document.querySelector('#bb-author').value === 'cleo'`, "the decision from a link")
		p.run(chromedp.Click(chromedp.CSS("#bb-clear")))
		p.waitJS(`document.querySelector('#bb-list').dataset.kind === '' && document.querySelectorAll('#bb-list .bb-entry').length === 3`, "the filters cleared")

		// Post a fact; it appears on top, once.
		const fact = "The venue holds 200 people. 场地可容纳两百人。"
		p.run(chromedp.Click(chromedp.CSS("#bb-post-toggle")),
			chromedp.SetValue(chromedp.CSS("#bb-post-text"), fact))
		p.selectValue("#bb-post-kind", "fact")
		p.run(chromedp.Click(chromedp.CSS("#bb-post")))
		p.waitJS(`document.querySelector('#bb-list .bb-entry')?.textContent.includes('200 people') && document.querySelector('#bb-list .bb-entry').dataset.author === 'user:alice'`, "the posted fact on top")
		waitStreamed(t, p, c, "acme", "alice", "launch") // its stream event arrives too
		if n := p.str(`String(document.querySelectorAll('#bb-list .bb-entry').length)`); n != "4" {
			t.Fatalf("%s entries after posting, want 4", n)
		}
		factID := p.str(`document.querySelector('#bb-list .bb-entry').dataset.memoryId`)

		// Search, in English and Chinese: the fact first, with the legs that found it.
		for _, q := range []string{"venue capacity 200 people", "场地能容纳多少人"} {
			p.run(chromedp.SetValue(chromedp.CSS("#bb-q"), q), chromedp.Click(chromedp.CSS("#bb-search")))
			p.waitJS(`document.querySelector('#bb-list').dataset.q === `+jsString(q), "the results for "+q)
			if first := p.str(`document.querySelector('#bb-list .bb-hit')?.dataset.memoryId || ''`); first != factID {
				t.Fatalf("search %q: first %q, want %s; list %s", q, first, factID, p.str(`document.querySelector('#bb-list').innerText`))
			}
			if bad := p.str(`String([...document.querySelectorAll('#bb-list .bb-hit')].filter(e => !['both','vector','fulltext'].includes(e.dataset.foundBy) || !e.querySelector('.leg')).length)`); bad != "0" {
				t.Fatalf("%s hits without a leg", bad)
			}
		}
		p.waitJS(`document.querySelector('#bb-status').textContent.includes('result')`, "the legs summary")
		p.run(chromedp.Click(chromedp.CSS(`#bb-list .bb-hit .bb-open`)))
		p.waitJS(`document.querySelector('#bb-list .bb-hit .bb-full')?.textContent === `+jsString(fact), "the hit in full")
		p.shot("blackboard-search")

		// The group picker.
		p.open("/blackboard" + acme)
		p.waitJS(`document.querySelector('#bb-groups .team-row[data-group-id=launch] a')`, "the launch group in the picker")
		p.run(chromedp.Click(chromedp.CSS(`#bb-groups .team-row[data-group-id=launch] a`)))
		p.waitJS(`location.pathname === '/blackboard/launch' && document.querySelectorAll('#bb-list .bb-entry').length === 4`, "the blackboard from the picker")

		// On a phone.
		p.run(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
		p.open("/blackboard/launch" + acme)
		p.waitJS(`document.querySelectorAll('#bb-list .bb-entry').length === 4`, "the blackboard on a phone")
		if w := p.str(`String(document.documentElement.scrollWidth)`); w != "390" {
			t.Errorf("the Blackboard page is %s px wide on a 390 px screen", w)
		}
		p.shot("blackboard-phone")
	})

	t.Run("the live blackboard resumes after a dropped connection", func(t *testing.T) {
		if runID == "" {
			t.Skip("needs the team run")
		}
		proxy := startDropProxy(t, strings.TrimPrefix(c.url, "http://"))
		viaProxy := &console{url: "http://" + proxy.addr(), workspace: c.workspace}
		p := b.page(t, viaProxy)
		p.open("/blackboard/launch" + acme)
		p.waitJS(`document.querySelector('#bb-live')?.dataset.state === 'live' && document.querySelectorAll('#bb-list .bb-entry').length === 4`, "the live blackboard")
		p.js(`window.__sameDocument = 'yes'`)
		// The connection drops; entries are written while the page is away.
		proxy.drop()
		for i := range 3 {
			if code := c.call(t, "acme", "alice", "POST", "/api/groups/launch/blackboard", map[string]string{"kind": "todo", "text": fmt.Sprintf("Book the caterer, step %d. 预订餐饮 %d。", i, i)}, nil); code != http.StatusCreated {
				t.Fatalf("post: %d", code)
			}
		}
		// The browser reconnects with Last-Event-ID: each entry shows, once.
		p.waitJS(`document.querySelectorAll('#bb-list .bb-entry[data-kind=todo]').length === 3 && document.querySelector('#bb-live').dataset.state === 'live'`, "the entries written while away")
		waitStreamed(t, p, c, "acme", "alice", "launch")
		if got := p.str(`[...document.querySelectorAll('#bb-list .bb-entry')].map(e => e.dataset.kind).join(' ') + ' | ' + document.querySelector('#bb-count').textContent + ' | ' + (window.__sameDocument || '')`); got != "todo todo todo fact decision proposal proposal | 7 entries | yes" {
			t.Fatalf("after the reconnect: %s", got)
		}
		if proxy.connections() < 2 {
			t.Fatalf("the page did not reconnect (%d connections)", proxy.connections())
		}
	})

	t.Run("trace of a team run reads as a conversation", func(t *testing.T) {
		if runID == "" {
			t.Skip("needs the team run")
		}
		p := b.page(t, c)
		p.open("/trace/" + runID + acme)
		p.waitJS(`document.querySelector('#trace-status .badge')?.textContent === 'completed' && document.querySelector('#trace-timeline .conv-msg[data-type="message.decision"]') && document.querySelectorAll('#trace-timeline .conv-msg[data-type="message.proposal"]').length === 2`, "the conversation in the trace")
		if txt := p.str(`document.querySelector('#trace-summary').innerText`); !strings.Contains(txt, "launch") || strings.Contains(txt, "Session") {
			t.Fatalf("trace summary of a team run: %s", txt)
		}
		p.shot("trace-team")
		// A member's run links back to its team run.
		member := p.str(`document.querySelector('.conv-msg[data-type="message.proposal"] a[href^="/trace/"]').getAttribute('href').split('?')[0].slice(7)`)
		p.open("/trace/" + member + acme)
		p.waitJS(`document.querySelector('#trace-summary a[href^="/trace/`+runID+`"]')`, "the link to the team run")
	})

	t.Run("roles in use are deleted only with cascade", func(t *testing.T) {
		if runID == "" {
			t.Skip("needs the team")
		}
		p := b.page(t, c)
		p.open("/orchestrator" + acme + "&group=launch")
		p.waitJS(`document.querySelector('.member-row[data-agent-id=ben]') && document.querySelector('.role-row[data-role-id=critic]')`, "the critic and its member")
		// The researcher's stats count its member run.
		p.run(chromedp.Click(chromedp.CSS(`.role-row[data-role-id=researcher] .role-stats`)))
		p.waitJS(`document.querySelector('.role-row[data-role-id=researcher] .stat[data-stat="member runs in this role"] dd')?.textContent === '1' && document.querySelector('.role-row[data-role-id=researcher] .stat[data-stat=success] dd').textContent === '100%'`, "the researcher's stats")
		p.run(chromedp.Click(chromedp.CSS(`.role-row[data-role-id=critic] .role-delete`)),
			chromedp.Click(chromedp.CSS(`.role-row[data-role-id=critic] .role-delete-confirm`)))
		p.waitJS(`document.querySelector('.role-row[data-role-id=critic] .role-in-use') && document.querySelector('.role-row[data-role-id=critic] .role-delete-cascade')`, "the in-use confirmation")
		p.shot("teams-role-in-use")
		p.run(chromedp.Click(chromedp.CSS(`.role-row[data-role-id=critic] .role-delete-cascade`)))
		p.waitJS(`!document.querySelector('.role-row[data-role-id=critic]') && document.querySelector('.role-row[data-role-id=lead]')`, "the critic role gone")
		p.waitJS(`!document.querySelector('.member-row[data-agent-id=ben]') && document.querySelector('.member-row[data-agent-id=ada]')`, "ben no longer a member")
		var members struct {
			Members []struct {
				AgentID string `json:"agent_id"`
			} `json:"members"`
		}
		c.call(t, "acme", "alice", "GET", "/api/groups/launch/members", nil, &members)
		if len(members.Members) != 2 {
			t.Fatalf("members after the cascade: %+v", members.Members)
		}
		if code := c.call(t, "acme", "alice", "GET", "/api/agents/ben", nil, nil); code != http.StatusOK {
			t.Fatalf("the agent went with its role: %d", code)
		}
	})

	t.Run("another scope sees none of the team", func(t *testing.T) {
		if runID == "" {
			t.Skip("needs the team")
		}
		p := b.page(t, c)
		const globex = "?org_id=globex&user_id=bob"
		p.open("/orchestrator" + globex + "&group=launch&run=" + runID)
		p.waitJS(`document.querySelector('#group-detail .error-box .error-title')?.textContent === 'Not found' && document.querySelector('#groups-empty') && document.querySelector('#roles-empty')`, "acme's group not found for globex")
		p.open("/blackboard/launch" + globex)
		p.waitJS(`document.querySelector('#bb-list .error-box .error-title')?.textContent === 'Not found'`, "acme's blackboard not found for globex")
		if n := p.str(`String(document.querySelectorAll('.bb-entry').length)`); n != "0" {
			t.Fatalf("globex sees %s entries", n)
		}
		p.open("/blackboard" + globex)
		p.waitJS(`document.querySelector('#bb-groups-empty')`, "no groups for globex")
		p.open("/trace/" + runID + globex)
		p.waitJS(`document.querySelector('.error-box .error-title')?.textContent === 'Not found'`, "acme's team run not found for globex")
		for _, path := range []string{"/orchestrator", "/blackboard/launch"} {
			p.open(path + globex)
			p.waitJS(`!document.querySelector('.loading')`, "the page settled")
			if text := p.str(`document.querySelector('#main').innerText`); strings.Contains(text, "Launch team") || strings.Contains(text, "发布小组") || strings.Contains(text, "青鸟") || strings.Contains(text, "Researcher") {
				t.Fatalf("globex sees acme's team on %s: %s", path, text)
			}
		}
		// Switching the scope on an open Teams page forgets the old one.
		p.open("/orchestrator" + acme + "&group=launch")
		p.waitJS(`document.querySelector('.member-row[data-agent-id=cleo]')`, "acme's team")
		p.run(chromedp.Click(chromedp.CSS("#scope-button")),
			chromedp.SetValue(chromedp.CSS(`#scope-panel input[name=org_id]`), "globex"),
			chromedp.SetValue(chromedp.CSS(`#scope-panel input[name=user_id]`), "bob"),
			chromedp.Click(chromedp.CSS(`#scope-panel button[type=submit]`)))
		p.waitJS(`document.querySelector('#groups-empty') && location.search.includes('org_id=globex')`, "globex's empty Teams page")
		if p.str(`document.querySelector('.member-row') ? 'y' : 'n'`) != "n" {
			t.Fatal("acme's members still shown after switching to globex")
		}
	})

	t.Run("failed API calls show a readable error", func(t *testing.T) {
		// A group with no lead cannot run: the API's 422 reads as words.
		if code := c.call(t, "acme", "alice", "POST", "/api/groups", map[string]any{
			"group_id": "nolead", "name": "No lead", "members": []map[string]string{{"agent_id": "ada", "role_id": "researcher"}},
		}, nil); code != http.StatusCreated {
			t.Fatalf("create group: %d", code)
		}
		p := b.page(t, c)
		p.open("/orchestrator" + acme + "&group=nolead")
		p.waitJS(`document.querySelector('#no-lead-note') && document.querySelector('#team-run-input')`, "the no-lead warning")
		if head := p.str(`document.querySelector('.group-head').innerText`); strings.Contains(head, "null") || strings.Contains(head, "undefined") {
			t.Fatalf("group head: %q", head)
		}
		p.run(chromedp.SetValue(chromedp.CSS("#team-run-input"), "anything"), chromedp.Click(chromedp.CSS("#team-run-start")))
		p.waitJS(`document.querySelector('#team-run-error .error-box .error-message')?.textContent.includes('lead')`, "the no_lead error")
		if code := p.str(`document.querySelector('#team-run-error .error-code').textContent`); !strings.Contains(code, "422") || !strings.Contains(code, "no_lead") {
			t.Fatalf("error code line %q", code)
		}
		p.shot("teams-error")
		// Rename the group, then delete it.
		p.run(chromedp.Click(chromedp.CSS("#group-edit")),
			chromedp.SetValue(chromedp.CSS(`#group-edit-form input[name=name]`), "No lead yet 无组长"),
			chromedp.SetValue(chromedp.CSS(`#group-edit-form input[name=description]`), "waiting for a lead"),
			chromedp.Click(chromedp.CSS(`#group-edit-form button[type=submit]`)))
		p.waitJS(`document.querySelector('#group-title')?.textContent === 'No lead yet 无组长' && document.querySelector('.group-desc')?.textContent === 'waiting for a lead' && document.querySelector('.group-row[data-group-id=nolead] .team-name')?.textContent === 'No lead yet 无组长'`, "the renamed group")
		p.run(chromedp.Click(chromedp.CSS("#group-delete")), chromedp.Click(chromedp.CSS("#group-delete-confirm")))
		p.waitJS(`document.querySelector('#team-intro') && !document.querySelector('.group-row[data-group-id=nolead]') && document.querySelector('.group-row[data-group-id=launch]') && !location.search.includes('group=')`, "the deleted group gone")
		if code := c.call(t, "acme", "alice", "GET", "/api/groups/nolead", nil, nil); code != http.StatusNotFound {
			t.Fatalf("deleted group: GET %d", code)
		}
		// A group that does not exist.
		p.open("/orchestrator" + acme + "&group=nope")
		p.waitJS(`document.querySelector('#group-detail .error-box .error-message')?.textContent.includes('"nope" not found')`, "the missing group explained")
		p.open("/blackboard/nope" + acme)
		p.waitJS(`document.querySelector('#bb-list .error-box .error-message')?.textContent.includes('"nope" not found')`, "the missing blackboard explained")
		// A bad filter from a hand-made link.
		p.open("/blackboard/launch" + acme + "&author=" + strings.Repeat("x", 10))
		p.waitJS(`document.querySelector('#bb-empty')`, "an unknown author matches nothing")
	})

	t.Logf("team browser tests took %s", time.Since(start).Round(time.Millisecond))
}

// TestBlackboardThousandEntries seeds 1,000 entries and measures how long the
// Blackboard page takes from navigation to showing its first entries. The
// target (under 1 s) belongs to a benchmark; this test reports the figure and
// fails only past a generous bound.
func TestBlackboardThousandEntries(t *testing.T) {
	c := startConsoleWith(t, 0)
	const org, user = "big", "bea"
	if code := c.call(t, org, user, "POST", "/api/groups", map[string]any{"group_id": "big", "name": "Big board"}, nil); code != http.StatusCreated {
		t.Fatalf("create group: %d", code)
	}
	seedStart := time.Now()
	const n = 1000
	kinds := []string{"fact", "proposal", "todo", "fact", "decision"}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				body, _ := json.Marshal(map[string]string{"kind": kinds[i%len(kinds)], "text": fmt.Sprintf("Entry %04d: note about topic %d. 第%d条记录。", i, i%37, i)})
				req, _ := http.NewRequest("POST", c.url+"/api/groups/big/blackboard", bytes.NewReader(body))
				req.Header.Set("x-org-id", org)
				req.Header.Set("x-user-id", user)
				req.Header.Set("content-type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("entry %d: HTTP %d", i, resp.StatusCode)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("seeded %d entries through the API in %s", n, time.Since(seedStart).Round(time.Millisecond))

	b := startBrowser(t)
	p := b.page(t, c)
	url := c.url + "/blackboard/big?org_id=" + org + "&user_id=" + user
	var wall, dom []time.Duration
	for i := range 6 {
		t0 := time.Now()
		p.run(chromedp.Navigate(url))
		for {
			ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool](`!!document.querySelector('#bb-list')?.dataset.shownAt`))
			if err == nil && ok {
				break
			}
			if time.Since(t0) > 15*time.Second {
				t.Fatalf("the blackboard with %d entries did not show within 15 s\n%s", n, p.text())
			}
			time.Sleep(2 * time.Millisecond)
		}
		w := time.Since(t0)
		ms, err := strconv.Atoi(p.str(`document.querySelector('#bb-list').dataset.shownAt`))
		if err != nil {
			t.Fatal(err)
		}
		d := time.Duration(ms) * time.Millisecond
		// Where the time went, from the page's own timings.
		parts := p.str(`(() => {
			const nav = performance.getEntriesByType('navigation')[0];
			const list = performance.getEntriesByType('resource').find(r => r.name.includes('/blackboard?'));
			const f = (x) => Math.round(x) + ' ms';
			return 'document ' + f(nav.responseEnd) + ', scripts run by ' + f(nav.domContentLoadedEventEnd) +
				(list ? ', list request ' + f(list.startTime) + '–' + f(list.responseEnd) : '');
		})()`)
		t.Logf("open %d: first entries in the DOM %s after navigation start (page clock; %s); %s wall clock from the test", i+1, d, parts, w.Round(time.Millisecond))
		if i > 0 { // the first open also compiles the page's modules
			wall = append(wall, w)
			dom = append(dom, d)
		} else if d > 5*time.Second {
			t.Fatalf("the first open took %s", d)
		}
	}
	med := func(ds []time.Duration) time.Duration {
		s := append([]time.Duration(nil), ds...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	t.Logf("blackboard with %d entries: first entries shown in %s (median of %d warm opens, page clock; max %s), %s wall clock",
		n, med(dom), len(dom), slicesMax(dom), med(wall).Round(time.Millisecond))
	if med(dom) > 5*time.Second {
		t.Fatalf("the blackboard with %d entries takes %s to show its first entries", n, med(dom))
	}

	// Only a page is rendered; the rest comes by "show more".
	p.waitJS(`document.querySelectorAll('#bb-list .bb-entry').length === 50 && document.querySelector('#bb-count').textContent === '1000 entries' && document.querySelector('#bb-more')`, "50 of 1,000 entries and a way to more")
	if first := p.str(`document.querySelector('#bb-list .bb-entry').textContent`); !strings.Contains(first, "Entry 0999") && !strings.Contains(first, "Entry 099") {
		t.Logf("newest entry shown: %s", first) // concurrent seeding: the newest is one of the last few
	}
	p.run(chromedp.Click(chromedp.CSS("#bb-more")))
	p.waitJS(`document.querySelectorAll('#bb-list .bb-entry').length === 100 && new Set([...document.querySelectorAll('#bb-list .bb-entry')].map(e => e.dataset.memoryId)).size === 100`, "100 distinct entries")
	// The stream's replay of the 1,000 stored entries adds none of them again.
	p.waitJS(`document.querySelector('#bb-live')?.dataset.state === 'live'`, "the live stream")
	waitStreamed(t, p, c, org, user, "big")
	if got := p.str(`String(document.querySelectorAll('#bb-list .bb-entry').length) + ' ' + document.querySelectorAll('#bb-list .bb-entry.fresh').length`); got != "100 0" {
		t.Fatalf("after the stream's replay: %s entries (fresh), want 100 0", got)
	}
	// A new entry still arrives live.
	if code := c.call(t, org, user, "POST", "/api/groups/big/blackboard", map[string]string{"kind": "decision", "text": "Ship it on Tuesday."}, nil); code != http.StatusCreated {
		t.Fatalf("post: %d", code)
	}
	p.waitJS(`document.querySelector('#bb-list .bb-entry')?.textContent.includes('Ship it on Tuesday') && document.querySelectorAll('#bb-list .bb-entry').length === 101 && document.querySelector('#bb-count').textContent === '1001 entries'`, "the new decision on top")
	p.shot("blackboard-1000")
}

// dropProxy forwards TCP connections to a target and can cut every open one
// at once, like a network hiccup, while new connections keep working.
type dropProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	open  map[net.Conn]bool
	total int
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dropProxy{ln: ln, open: map[net.Conn]bool{}}
	t.Cleanup(func() {
		_ = ln.Close()
		d.drop()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			d.mu.Lock()
			d.open[in], d.open[out] = true, true
			d.total++
			d.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				_ = dst.Close()
				_ = src.Close()
				d.mu.Lock()
				delete(d.open, dst)
				delete(d.open, src)
				d.mu.Unlock()
			}
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
	return d
}

func (d *dropProxy) addr() string { return d.ln.Addr().String() }

// drop closes every open connection.
func (d *dropProxy) drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for conn := range d.open {
		_ = conn.Close()
	}
}

func (d *dropProxy) connections() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}

func slicesMax(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// waitStreamed waits until the blackboard page p has shown everything the
// group's stream holds now: the id the stream's ?from=now answers with is the
// group's newest event, and the page records on #bb-live the last id it has
// shown everything up to. What a test checks after it cannot still change
// because of an event on its way.
func waitStreamed(t *testing.T, p *page, c *console, org, user, groupID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/api/groups/"+groupID+"/stream?from=now", nil)
	req.Header.Set("x-org-id", org)
	req.Header.Set("x-user-id", user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("group stream: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	latest := ""
	for latest == "" && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "data: {\"last_event_id\":"); ok {
			latest = strings.TrimSuffix(v, "}")
		}
	}
	if latest == "" {
		t.Fatalf("group stream: no ready event (%v)", sc.Err())
	}
	p.waitJS(`+(document.querySelector('#bb-live')?.dataset.lastEventId || 0) >= `+latest, "the page to show the stream up to event "+latest)
}
