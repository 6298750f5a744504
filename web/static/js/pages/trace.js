// Trace: one run as a timeline of steps — model calls with the prompt's tail
// and the output, tool calls with arguments and results, blocked calls,
// errors. Live while the run is going: the SSE stream resumes after a dropped
// connection with Last-Event-ID, so no stored event is missed.
import { api, withScope, link, fetchAllEvents } from '../api.js';
import { h, clear, errorBox, badge, fmtTime, timeEl, duration, runDuration, pretty, spinner, downloadJSON, toast, citation } from '../dom.js';
import { Roster, messageItem } from '../team.js';

const SHOW_STEP = 300;

export function render(root, { params }) {
  const runId = params.runId;
  document.title = `Trace ${runId} · OpenIntern`;
  const state = { alive: true, es: null, events: [], lastId: 0, shown: 0, run: null, steps: new Map(), live: new Map(), roster: new Roster() };

  const page = h('section', { class: 'page page-trace' });
  root.append(page);

  const liveEl = h('span', { class: 'live-indicator', id: 'trace-live' });
  const statusEl = h('span', { id: 'trace-status' });
  const summary = h('div', { class: 'card trace-summary', id: 'trace-summary' });
  const timeline = h('ol', { class: 'timeline', id: 'trace-timeline' });
  const more = h('div', { class: 'more-box' });
  const exportBtn = h('button', { type: 'button', id: 'trace-export' }, 'Export JSON');
  const cancelBtn = h('button', { type: 'button', id: 'trace-cancel', hidden: true }, 'Cancel run');

  async function start() {
    clear(page).append(spinner('Loading the run…'));
    let run;
    try {
      run = await api('GET', `/api/runs/${encodeURIComponent(runId)}`);
    } catch (err) {
      if (!state.alive) return;
      clear(page).append(
        h('header', { class: 'page-head' }, h('h1', null, 'Trace'), h('code', { class: 'muted' }, runId)),
        errorBox(err, start),
        h('p', null, link('/runs', '← all runs')));
      return;
    }
    if (!state.alive) return;
    state.run = run;
    clear(page).append(
      h('header', { class: 'page-head' },
        h('h1', null, 'Trace'), h('code', { class: 'run-id-full', title: 'run id' }, run.run_id), statusEl, liveEl,
        h('span', { class: 'spacer' }), cancelBtn, exportBtn),
      summary,
      h('h2', { class: 'section-title' }, 'Timeline'),
      timeline, more);
    renderSummary();
    timeline.append(h('li', { class: 'loading-item' }, spinner('Loading events…')));
    try {
      const evs = await fetchAllEvents(runId);
      if (!state.alive) return;
      clear(timeline);
      for (const ev of evs) add(ev);
      renderMore();
    } catch (err) {
      if (!state.alive) return;
      clear(timeline).append(h('li', null, errorBox(err, start)));
      return;
    }
    if (!finished(state.run.status)) stream();
    else setLive('ended');
  }

  function renderSummary() {
    const r = state.run;
    statusEl.replaceChildren(badge(r.status));
    cancelBtn.hidden = finished(r.status);
    const fact = (k, v) => (v ? h('div', { class: 'fact' }, h('dt', null, k), h('dd', null, v)) : null);
    const usage = r.usage && r.usage.total_tokens
      ? `${r.usage.total_tokens} (prompt ${r.usage.prompt_tokens}, completion ${r.usage.completion_tokens})` : '';
    const team = r.group_id ? h('span', { class: 'trace-group' },
      link(`/orchestrator?group=${encodeURIComponent(r.group_id)}&run=${encodeURIComponent(r.parent_run_id || r.run_id)}`, r.group_id),
      ' · ', link(`/blackboard/${r.group_id}`, 'blackboard')) : null;
    summary.replaceChildren(
      h('dl', { class: 'facts' },
        r.agent_id ? fact('Agent', link(`/agents`, r.agent_id)) : fact('Run', 'a team run: the group’s members talk below'),
        r.agent_id ? fact('Session', link(`/?agent=${encodeURIComponent(r.agent_id)}&session=${encodeURIComponent(r.session_key)}`, r.session_key)) : null,
        fact('Group', team),
        r.parent_run_id ? fact('Team run', link(`/trace/${r.parent_run_id}`, r.parent_run_id)) : null,
        fact('Created', h('span', { title: fmtTime(r.created_at) }, timeEl(r.created_at))),
        fact('Duration', runDuration(r)),
        fact('Steps', String(r.steps)),
        fact('Tokens', usage)),
      h('div', { class: 'io' },
        h('div', { class: 'label' }, 'Input'), h('div', { class: 'text-block' }, r.input),
        r.output ? [h('div', { class: 'label' }, 'Output'), h('div', { class: 'text-block output', id: 'trace-output' }, r.output)] : null,
        r.error ? h('div', { class: 'msg-error', role: 'alert' }, `${r.error.message} (${r.error.code})`) : null));
  }

  // add records an event and shows it unless the timeline is past its page.
  function add(ev) {
    if (ev.id) {
      if (ev.id <= state.lastId) return;
      state.lastId = ev.id;
    }
    if (ev.type === 'llm.token') {
      liveToken(ev);
      return;
    }
    state.events.push(ev);
    if (state.shown === state.events.length - 1 && state.shown < SHOW_STEP * Math.max(1, state.pages || 1)) {
      show(ev);
      state.shown++;
    }
  }

  function renderMore() {
    clear(more);
    const left = state.events.length - state.shown;
    if (left <= 0) return;
    const btn = h('button', { type: 'button', id: 'trace-more' }, `Show ${Math.min(left, SHOW_STEP)} more of ${left} remaining events`);
    btn.addEventListener('click', () => {
      state.pages = (state.pages || 1) + 1;
      const end = Math.min(state.events.length, state.shown + SHOW_STEP);
      for (; state.shown < end; state.shown++) show(state.events[state.shown]);
      renderMore();
    });
    more.append(btn);
  }

  function container(ev) {
    if (!ev.step_id) return timeline;
    let s = state.steps.get(ev.step_id);
    if (!s) {
      const n = state.steps.size + 1;
      const body = h('ol', { class: 'step-events' });
      const title = h('span', { class: 'step-title' }, `Step ${n}`);
      const el = h('li', { class: 'step', dataset: { stepId: ev.step_id } },
        h('div', { class: 'step-head' }, title, h('span', { class: 'muted step-time' }, fmtClock(ev.ts))), body);
      s = { el, body, title };
      state.steps.set(ev.step_id, s);
      timeline.append(el);
    }
    if (ev.type === 'step.started' && ev.payload && ev.payload.step) s.title.textContent = `Step ${ev.payload.step}`;
    return s.body;
  }

  function show(ev) {
    const into = container(ev);
    if (ev.type === 'step.started') return;
    const item = teamRun(state.run) && conversational(ev.type) ? teamItem(ev) : eventItem(ev, state.run);
    if (!item) return;
    if (ev.type === 'llm.called') {
      const live = state.live.get(ev.step_id);
      if (live) {
        live.remove();
        state.live.delete(ev.step_id);
      }
    }
    into.append(item);
  }

  // teamItem shows a group run's message between roles as a conversation.
  function teamItem(ev) {
    const item = messageItem(ev, state.roster, { groupId: state.run.group_id });
    if (item) item.append(fold('raw event', codeBlock(ev), false));
    return item;
  }

  function liveToken(ev) {
    let el = state.live.get(ev.step_id);
    if (!el) {
      const into = container(ev);
      el = h('li', { class: 'ev ev-live', dataset: { type: 'llm.token' } },
        h('div', { class: 'ev-head' }, h('span', { class: 'ev-kind kind-llm' }, 'LLM'), h('span', { class: 'ev-title' }, 'streaming…')),
        h('pre', { class: 'code live-text' }));
      state.live.set(ev.step_id, el);
      into.append(el);
    }
    el.querySelector('.live-text').append((ev.payload && ev.payload.delta) || '');
  }

  function setLive(s) {
    liveEl.dataset.state = s;
    liveEl.textContent = { live: '● live', reconnecting: '● reconnecting…', ended: '', closed: 'stream closed' }[s] ?? s;
  }

  function stream() {
    const url = withScope(`/api/runs/${encodeURIComponent(runId)}/stream`, { last_event_id: state.lastId || '' });
    const es = new EventSource(url);
    state.es = es;
    setLive('live');
    es.onopen = () => setLive('live');
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      add(ev);
      if (ev.type.startsWith('run.')) refreshRun();
      renderMore();
    };
    es.addEventListener('end', () => {
      es.close();
      state.es = null;
      setLive('ended');
      refreshRun();
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        state.es = null;
        setLive('closed');
        liveEl.append(' ', h('button', { type: 'button', class: 'link-button', onclick: () => stream() }, 'reconnect'));
      } else {
        setLive('reconnecting');
      }
    };
  }

  async function refreshRun() {
    try {
      const run = await api('GET', `/api/runs/${encodeURIComponent(runId)}`);
      if (!state.alive) return;
      state.run = run;
      renderSummary();
    } catch { /* the timeline still shows what happened */ }
  }

  exportBtn.addEventListener('click', async () => {
    exportBtn.disabled = true;
    try {
      const [run, events] = await Promise.all([
        api('GET', `/api/runs/${encodeURIComponent(runId)}`), fetchAllEvents(runId)]);
      downloadJSON(`trace-${runId}.json`, { run, events, exported_at: new Date().toISOString() });
    } catch (err) {
      toast(`Export failed: ${err.message}`, 'error');
    } finally {
      exportBtn.disabled = false;
    }
  });

  cancelBtn.addEventListener('click', async () => {
    cancelBtn.disabled = true;
    try {
      const res = await api('POST', `/api/runs/${encodeURIComponent(runId)}/cancel`);
      toast(`Run ${res.status}`);
      refreshRun();
    } catch (err) {
      toast(`Cancel failed: ${err.message}`, 'error');
    } finally {
      cancelBtn.disabled = false;
    }
  });

  start();
  return () => {
    state.alive = false;
    if (state.es) state.es.close();
  };
}

// teamRun: a group's run (no agent of its own) whose events are messages.
function teamRun(run) {
  return !!(run && run.group_id && !run.agent_id);
}

function conversational(type) {
  return type === 'run.started' || type.startsWith('message.') || type === 'blackboard.written';
}

function finished(status) {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

function fmtClock(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
}

function fold(title, content, open) {
  return h('details', { class: 'fold', open: !!open }, h('summary', null, title), content);
}

function codeBlock(v, cls) {
  return h('pre', { class: `code ${cls || ''}` }, typeof v === 'string' ? v : pretty(v));
}

// eventItem renders one stored event of the timeline.
function eventItem(ev, run) {
  const p = ev.payload || {};
  let kind = 'info';
  let kindText = ev.type.split('.')[0];
  let title = ev.type;
  let extra = [];
  let cls = '';
  switch (ev.type) {
    case 'run.started':
      kind = 'run'; kindText = 'run';
      title = 'Run started';
      if (Array.isArray(p.message_ids) && p.message_ids.length > 1) title += ` · ${p.message_ids.length} messages`;
      break;
    case 'run.resumed':
      kind = 'run'; kindText = 'run';
      title = `Resumed from step ${p.from_step}`;
      break;
    case 'llm.called': {
      kind = 'llm'; kindText = 'LLM';
      const u = p.usage || {};
      title = [p.model || p.provider || 'model', p.duration_ms !== undefined ? duration(p.duration_ms) : '',
        u.total_tokens ? `${u.total_tokens} tokens` : '', p.finish_reason || ''].filter(Boolean).join(' · ');
      if (p.prompt_tail) {
        const tail = p.prompt_tail;
        const who = tail.role ? `${tail.role}${tail.name ? ' ' + tail.name : ''}` : '';
        extra.push(fold(`Prompt tail${p.prompt_messages ? ` (last of ${p.prompt_messages} messages)` : ''}${who ? ' · ' + who : ''}`,
          codeBlock(tail.content ?? tail)));
      }
      if (p.error) {
        cls = 'ev-bad';
        extra.push(h('div', { class: 'msg-error' }, p.error));
      }
      if (p.content) extra.push(h('div', { class: 'label' }, 'Output'), h('div', { class: 'text-block' }, p.content));
      if (Array.isArray(p.tool_calls) && p.tool_calls.length) {
        extra.push(h('div', { class: 'label' }, 'Asks for'),
          h('ul', { class: 'plain' }, p.tool_calls.map((tc) => h('li', null, h('code', null, tc.name || tc.Name || 'tool'), ' ', h('span', { class: 'muted' }, tc.id || tc.ID || '')))));
      }
      break;
    }
    case 'tool.called':
      kind = 'tool'; kindText = 'tool';
      title = `call ${p.name}`;
      extra.push(h('div', { class: 'label' }, 'Arguments'), codeBlock(p.arguments));
      break;
    case 'tool.result': {
      kind = 'tool'; kindText = 'tool';
      title = [`result ${p.name}`, p.outcome || '', p.duration_ms !== undefined ? duration(p.duration_ms) : ''].filter(Boolean).join(' · ');
      if (p.is_error) cls = 'ev-bad';
      const content = String(p.content ?? '');
      const block = codeBlock(content);
      extra.push(content.length > 600 ? fold(`Result (${content.length} characters)`, block) : block);
      break;
    }
    case 'tool.blocked':
      kind = 'blocked'; kindText = 'blocked';
      title = `blocked ${p.name}`;
      cls = 'ev-bad';
      extra.push(h('div', { class: 'msg-error' }, p.reason || 'blocked by policy'));
      break;
    case 'tool.requires_approval':
      kind = 'blocked'; kindText = 'approval';
      title = `needs approval: ${p.name || ''}`;
      extra.push(codeBlock(p));
      break;
    case 'memory.searched': {
      kindText = 'memory';
      const hits = Array.isArray(p.results) ? p.results : [];
      title = `Recalled ${hits.length} memor${hits.length === 1 ? 'y' : 'ies'}`;
      if (p.error) extra.push(h('div', { class: 'msg-error' }, p.error));
      if (hits.length) {
        extra.push(h('ul', { class: 'plain recalled' }, hits.map((r) => h('li', { dataset: { memoryId: r.id } },
          link(`/memory?id=${encodeURIComponent(r.id)}`, h('code', null, r.id)), ' ',
          h('span', null, r.snippet || ''), ' ', citation(r.source)))));
      }
      break;
    }
    case 'step.completed':
      kind = 'step'; kindText = 'step';
      title = p.final ? 'Step completed · final answer' : `Step completed${p.tool_calls ? ` · ${p.tool_calls} tool call${p.tool_calls === 1 ? '' : 's'}` : ''}`;
      break;
    case 'run.completed':
      kind = 'ok'; kindText = 'done';
      title = `Run completed${p.steps ? ` in ${p.steps} step${p.steps === 1 ? '' : 's'}` : ''}`;
      if (p.output) extra.push(h('div', { class: 'text-block' }, p.output));
      break;
    case 'run.failed':
    case 'run.cancelled':
      kind = 'bad'; kindText = ev.type === 'run.failed' ? 'failed' : 'cancelled';
      title = ev.type === 'run.failed' ? 'Run failed' : 'Run cancelled';
      cls = 'ev-bad';
      if (p.error) extra.push(h('div', { class: 'msg-error' }, `${p.error.message || ''}${p.error.code ? ` (${p.error.code})` : ''}`));
      break;
    default:
      extra.push(fold('payload', codeBlock(p)));
  }
  const offset = run && run.created_at && ev.ts ? `+${duration(new Date(ev.ts) - new Date(run.created_at))}` : '';
  return h('li', { class: `ev ev-${kind} ${cls}`, dataset: { type: ev.type, id: String(ev.id || '') } },
    h('div', { class: 'ev-head' },
      h('span', { class: `ev-kind kind-${kind}` }, kindText),
      h('span', { class: 'ev-title' }, title),
      h('span', { class: 'ev-time muted', title: fmtTime(ev.ts) }, offset)),
    extra.length ? h('div', { class: 'ev-body' }, extra) : null,
    fold('raw event', codeBlock(ev), false));
}
