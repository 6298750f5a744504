// Chat: talk to one agent in one session. A message becomes a run (POST
// /api/runs); its answer streams in over the run's SSE stream, token by token,
// with tool calls folded in.
import { api, getScope, scopeText, withScope, link, fetchAllEvents, mayDo } from '../api.js';
import { h, clear, errorBox, badge, pretty, timeEl, spinner, toast } from '../dom.js';

const PAGE = 20;
const MAX_FOLLOW = 3;

function prefsKey() { return 'openintern.chat.' + scopeText(getScope()); }
function loadPrefs() {
  try { return JSON.parse(localStorage.getItem(prefsKey()) || '{}') || {}; } catch { return {}; }
}
function savePrefs(p) {
  try { localStorage.setItem(prefsKey(), JSON.stringify(p)); } catch { /* ignore */ }
}

function newSessionKey() {
  const d = new Date();
  const pad = (n) => String(n).padStart(2, '0');
  return `chat-${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;
}

export function render(root, { query, setQuery }) {
  document.title = 'Chat · OpenIntern';
  const prefs = loadPrefs();
  const state = {
    agentId: query.get('agent') || prefs.agent || 'main',
    session: query.get('session') || prefs.session || 'default',
    page: 0,
    total: 0,
    streams: new Set(),
    alive: true,
    loadSeq: 0,
  };

  const agentSelect = h('select', { id: 'chat-agent', 'aria-label': 'Agent' });
  const sessionInput = h('input', {
    id: 'chat-session', 'aria-label': 'Session', value: state.session, maxlength: '128', list: 'chat-sessions', autocomplete: 'off',
  });
  const sessionList = h('datalist', { id: 'chat-sessions' });
  const agentNote = h('p', { class: 'agent-note', hidden: true });
  const log = h('div', { class: 'chat-log', id: 'chat-log', 'aria-live': 'polite' });
  const input = h('textarea', {
    id: 'chat-input', rows: '2', placeholder: 'Message the agent… (Enter to send, Shift+Enter for a new line)', 'aria-label': 'Message',
  });
  const sendBtn = h('button', { type: 'submit', class: 'primary', id: 'chat-send' }, 'Send');
  const formError = h('div', { class: 'form-error', id: 'chat-error' });
  const form = h('form', { class: 'composer', id: 'chat-form' }, input, sendBtn);
  if (!mayDo('member')) {
    input.disabled = true;
    sendBtn.disabled = true;
    input.placeholder = 'Read only: your token has the viewer role, which cannot send messages.';
  }

  root.append(h('section', { class: 'page page-chat' },
    h('div', { class: 'chat-bar' },
      h('label', { class: 'field-inline' }, h('span', null, 'Agent'), agentSelect),
      h('label', { class: 'field-inline grow' }, h('span', null, 'Session'), sessionInput, sessionList),
      h('button', {
        type: 'button', id: 'chat-new-session', title: 'Start a new session',
        onclick: () => { sessionInput.value = newSessionKey(); changeSession(); input.focus(); },
      }, 'New session'),
      h('span', { class: 'chat-links' }, linkToRuns())),
    agentNote,
    log,
    formError,
    form));

  function linkToRuns() {
    const a = link(`/runs?session_key=${encodeURIComponent(state.session)}&agent_id=${encodeURIComponent(state.agentId)}`, 'runs of this session →');
    a.id = 'chat-runs-link';
    return a;
  }

  function remember() {
    savePrefs({ agent: state.agentId, session: state.session });
    setQuery({ agent: state.agentId === 'main' ? '' : state.agentId, session: state.session === 'default' ? '' : state.session });
    const old = document.getElementById('chat-runs-link');
    if (old) old.replaceWith(linkToRuns());
  }

  function changeSession() {
    const v = sessionInput.value.trim() || 'default';
    if (v === state.session) return;
    state.session = v;
    remember();
    loadHistory();
  }
  sessionInput.addEventListener('change', changeSession);
  agentSelect.addEventListener('change', () => {
    state.agentId = agentSelect.value;
    remember();
    showAgentNote();
    loadHistory();
    loadSessions();
  });

  let agents = [];
  function showAgentNote() {
    const a = agents.find((x) => x.agent_id === state.agentId);
    if (a && a.state === 'paused') {
      agentNote.hidden = false;
      agentNote.textContent = `${a.name || a.agent_id} is paused: messages wait in its inbox until it is resumed on the Agents page.`;
    } else {
      agentNote.hidden = true;
    }
  }

  async function loadAgents() {
    try {
      const res = await api('GET', '/api/agents?limit=200');
      if (!state.alive) return;
      agents = res.agents;
      clear(agentSelect);
      if (!agents.some((a) => a.agent_id === state.agentId)) {
        agents.push({ agent_id: state.agentId, name: state.agentId });
      }
      for (const a of agents) {
        agentSelect.append(h('option', { value: a.agent_id, selected: a.agent_id === state.agentId },
          a.name && a.name !== a.agent_id ? `${a.name} (${a.agent_id})` : a.agent_id));
      }
      showAgentNote();
    } catch (err) {
      if (!state.alive) return;
      agentSelect.append(h('option', { value: state.agentId }, state.agentId));
      formError.replaceChildren(errorBox(err, () => { formError.replaceChildren(); clear(agentSelect); loadAgents(); }));
    }
  }

  async function loadSessions() {
    try {
      const res = await api('GET', `/api/runs?agent_id=${encodeURIComponent(state.agentId)}&limit=100`);
      if (!state.alive) return;
      const seen = new Set();
      clear(sessionList);
      for (const r of res.runs) {
        if (seen.has(r.session_key)) continue;
        seen.add(r.session_key);
        sessionList.append(h('option', { value: r.session_key }));
      }
    } catch { /* the datalist is a convenience */ }
  }

  // ---- history

  function stopStreams() {
    for (const es of state.streams) es.close();
    state.streams.clear();
  }

  async function loadHistory() {
    stopStreams();
    const seq = ++state.loadSeq;
    state.page = 0;
    state.total = 0;
    clear(log).append(spinner('Loading the session…'));
    try {
      const runs = await fetchPage(1);
      if (seq !== state.loadSeq || !state.alive) return;
      clear(log);
      if (runs.length === 0) {
        log.append(h('div', { class: 'empty', id: 'chat-empty' },
          h('p', null, `No messages in session “${state.session}” yet.`),
          h('p', { class: 'muted' }, 'Say hello below. The offline demo model also understands “read file notes.txt”.')));
      }
      addLoadEarlier();
      let following = 0;
      for (const run of runs.slice().reverse()) {
        const t = turnFor(run);
        log.append(t.el);
        if (!finished(run.status) && following < MAX_FOLLOW) {
          following++;
          follow(t);
        }
      }
      scrollToEnd(true);
    } catch (err) {
      if (seq !== state.loadSeq || !state.alive) return;
      clear(log).append(errorBox(err, loadHistory));
    }
  }

  async function fetchPage(n) {
    const q = new URLSearchParams({ page: String(n), limit: String(PAGE), agent_id: state.agentId });
    const res = await api('GET', `/api/sessions/${encodeURIComponent(state.session)}/runs?${q}`);
    state.page = n;
    state.total = res.total;
    return res.runs;
  }

  function addLoadEarlier() {
    const old = log.querySelector('.load-earlier');
    if (old) old.remove();
    const shown = state.page * PAGE;
    if (shown >= state.total) return;
    const btn = h('button', { type: 'button', class: 'load-earlier' }, `Load earlier messages (${state.total - shown} more)`);
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      btn.textContent = 'Loading…';
      const seq = state.loadSeq;
      try {
        const runs = await fetchPage(state.page + 1);
        if (seq !== state.loadSeq) return;
        const before = log.scrollHeight;
        const first = btn.nextSibling;
        btn.remove();
        for (const run of runs.slice().reverse()) log.insertBefore(turnFor(run).el, first);
        addLoadEarlier();
        log.scrollTop += log.scrollHeight - before;
      } catch (err) {
        btn.disabled = false;
        btn.textContent = 'Load earlier messages';
        toast(err.message, 'error');
      }
    });
    log.prepend(btn);
  }

  // ---- one turn: the user's message and the agent's answer

  function turnFor(run) {
    const t = newTurn(run.run_id, run.input, run.created_at);
    setStatus(t, run.status);
    if (run.output) setFinal(t, run.output);
    if (run.error) addError(t, run.error);
    if (finished(run.status) && run.steps > 1) addToolFold(t);
    if (!finished(run.status) && !run.output) t.parts.append(thinking(t));
    return t;
  }

  function newTurn(runId, text, at) {
    const status = h('span', { class: 'turn-status' });
    const parts = h('div', { class: 'msg-parts' });
    const meta = h('div', { class: 'msg-meta' },
      h('span', { class: 'who' }, state.agentId), status,
      runId ? link(`/trace/${runId}`, 'trace') : null);
    const el = h('article', { class: 'turn', dataset: { runId: runId || '' } },
      h('div', { class: 'msg msg-user' },
        h('div', { class: 'msg-body' }, text),
        at ? h('div', { class: 'msg-meta' }, timeEl(at)) : null),
      h('div', { class: 'msg msg-agent' }, meta, parts));
    return { el, runId, status, parts, meta, texts: new Map(), tools: new Map(), lastText: null, done: false };
  }

  function setStatus(t, status) {
    t.status.replaceChildren(badge(status));
    t.el.dataset.status = status;
  }

  function thinking(t) {
    const el = h('div', { class: 'thinking' }, h('span', { class: 'dot-pulse', 'aria-hidden': 'true' }), 'thinking…');
    t.thinking = el;
    return el;
  }

  function dropThinking(t) {
    if (t.thinking) {
      t.thinking.remove();
      t.thinking = null;
    }
  }

  function textPart(t, stepId) {
    const key = stepId || '_';
    let el = t.texts.get(key);
    if (!el) {
      dropThinking(t);
      el = h('div', { class: 'msg-body answer' });
      t.texts.set(key, el);
      t.parts.append(el);
    }
    t.lastText = el;
    return el;
  }

  function setFinal(t, output) {
    dropThinking(t);
    const last = t.parts.lastElementChild;
    if (last && last.classList.contains('answer')) {
      last.textContent = output;
      last.classList.remove('streaming');
    } else {
      t.parts.append(h('div', { class: 'msg-body answer final' }, output));
    }
  }

  function addError(t, e) {
    dropThinking(t);
    const msg = e && typeof e === 'object' ? (e.message || JSON.stringify(e)) : String(e);
    t.parts.append(h('div', { class: 'msg-error', role: 'alert' }, msg, e && e.code ? h('span', { class: 'muted' }, ` (${e.code})`) : null));
  }

  function toolPart(t, callId, name) {
    let tp = t.tools.get(callId);
    if (!tp) {
      dropThinking(t);
      const state = h('span', { class: 'tool-state' }, 'calling…');
      const args = h('pre', { class: 'code tool-args' });
      const result = h('pre', { class: 'code tool-result' }, '…');
      const el = h('details', { class: 'tool', dataset: { callId } },
        h('summary', null, h('span', { class: 'tool-icon', 'aria-hidden': 'true' }, '⚙'), h('span', { class: 'tool-name' }, name || 'tool'), state),
        h('div', { class: 'tool-body' }, h('div', { class: 'label' }, 'Arguments'), args, h('div', { class: 'label' }, 'Result'), result));
      tp = { el, state, args, result };
      t.tools.set(callId, tp);
      t.parts.append(el);
    }
    return tp;
  }

  function applyEvent(t, ev) {
    const p = ev.payload || {};
    switch (ev.type) {
      case 'run.started':
      case 'run.resumed':
      case 'step.started':
        if (t.el.dataset.status === 'pending') setStatus(t, 'running');
        break;
      case 'llm.token': {
        const el = textPart(t, ev.step_id);
        el.classList.add('streaming');
        el.append(p.delta || '');
        scrollToEnd();
        break;
      }
      case 'llm.called': {
        if (p.error) {
          addError(t, { message: `Model call failed: ${p.error}` });
          break;
        }
        const el = t.texts.get(ev.step_id || '_');
        if (p.content) {
          const part = textPart(t, ev.step_id);
          part.textContent = p.content;
          part.classList.remove('streaming');
        } else if (el) {
          el.remove();
          t.texts.delete(ev.step_id || '_');
        }
        break;
      }
      case 'tool.called': {
        const tp = toolPart(t, p.call_id, p.name);
        tp.args.textContent = pretty(p.arguments);
        break;
      }
      case 'tool.blocked': {
        const tp = toolPart(t, p.call_id, p.name);
        tp.el.classList.add('blocked');
        tp.state.textContent = 'blocked';
        tp.result.textContent = p.reason || 'blocked by policy';
        break;
      }
      case 'tool.result': {
        const tp = toolPart(t, p.call_id, p.name);
        if (!tp.el.classList.contains('blocked')) {
          tp.state.textContent = p.is_error ? 'error' : `done${p.duration_ms !== undefined ? ` · ${p.duration_ms} ms` : ''}`;
          tp.el.classList.toggle('error', !!p.is_error);
          tp.result.textContent = p.content ?? '';
        }
        break;
      }
      case 'run.completed':
        setStatus(t, 'completed');
        if (p.output !== undefined) setFinal(t, p.output);
        t.done = true;
        break;
      case 'run.failed':
      case 'run.cancelled':
        setStatus(t, ev.type === 'run.failed' ? 'failed' : 'cancelled');
        addError(t, p.error || { message: ev.type });
        t.done = true;
        break;
      default:
        break;
    }
  }

  // follow streams a run into its turn; EventSource resumes after a dropped
  // connection by itself, sending Last-Event-ID.
  function follow(t) {
    const es = new EventSource(withScope(`/api/runs/${encodeURIComponent(t.runId)}/stream`));
    state.streams.add(es);
    t.el.classList.add('live');
    const stop = () => {
      es.close();
      state.streams.delete(es);
      t.el.classList.remove('live', 'reconnecting');
    };
    es.onopen = () => t.el.classList.remove('reconnecting');
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      applyEvent(t, ev);
      scrollToEnd();
    };
    es.addEventListener('end', () => {
      stop();
      if (!t.done) refreshTurn(t);
    });
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        stop();
        refreshTurn(t);
      } else {
        t.el.classList.add('reconnecting');
      }
    };
  }

  // refreshTurn reads the run once more, for when its stream ended early.
  async function refreshTurn(t) {
    try {
      const run = await api('GET', `/api/runs/${encodeURIComponent(t.runId)}`);
      if (!state.alive) return;
      setStatus(t, run.status);
      if (run.output) setFinal(t, run.output);
      else if (run.error && !t.done) addError(t, run.error);
      t.done = finished(run.status);
    } catch (err) {
      if (state.alive) addError(t, { message: `Lost the run's stream: ${err.message}` });
    }
  }

  function addToolFold(t) {
    const body = h('div', { class: 'fold-body' });
    const d = h('details', { class: 'steps-fold' }, h('summary', null, 'tool calls'), body);
    let loaded = false;
    d.addEventListener('toggle', async () => {
      if (!d.open || loaded) return;
      loaded = true;
      body.replaceChildren(spinner());
      try {
        const evs = await fetchAllEvents(t.runId);
        const sub = { ...t, parts: body, texts: new Map(), tools: new Map(), status: h('span'), el: h('div'), meta: null };
        body.replaceChildren();
        for (const ev of evs) if (ev.type.startsWith('tool.')) applyEvent(sub, ev);
        if (!body.firstChild) body.append(h('p', { class: 'muted' }, 'No tool calls in this run.'));
      } catch (err) {
        loaded = false;
        body.replaceChildren(errorBox(err));
      }
    });
    // The answer goes last; the fold sits above it.
    t.parts.prepend(d);
  }

  function scrollToEnd(force) {
    const near = log.scrollHeight - log.scrollTop - log.clientHeight < 160;
    if (force || near) log.scrollTop = log.scrollHeight;
  }

  // ---- sending

  async function send() {
    const text = input.value;
    if (!text.trim()) return;
    formError.replaceChildren();
    sendBtn.disabled = true;
    const empty = document.getElementById('chat-empty');
    try {
      const res = await api('POST', '/api/runs', { session_key: state.session, input: text, agent_id: state.agentId });
      if (!state.alive) return;
      if (empty) empty.remove();
      input.value = '';
      const t = newTurn(res.run_id, text, res.created_at);
      setStatus(t, res.status);
      t.parts.append(thinking(t));
      log.append(t.el);
      state.total++;
      scrollToEnd(true);
      follow(t);
    } catch (err) {
      formError.replaceChildren(errorBox(err));
    } finally {
      sendBtn.disabled = !mayDo('member');
      input.focus();
    }
  }
  form.addEventListener('submit', (e) => { e.preventDefault(); send(); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    }
  });

  remember();
  loadAgents();
  loadSessions();
  loadHistory();
  input.focus();

  return () => {
    state.alive = false;
    stopStreams();
  };
}

function finished(status) {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}
