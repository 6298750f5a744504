// Runs: every run of the scope, newest first, filtered by status, agent and
// session, paged. Refreshes while some shown run is still going.
import { api, link } from '../api.js';
import { h, clear, errorBox, badge, timeEl, pager, spinner, shortId, truncate, runDuration } from '../dom.js';

const LIMIT = 25;
const STATUSES = ['pending', 'running', 'waiting_approval', 'completed', 'failed', 'cancelled'];

export function render(root, { query, setQuery }) {
  document.title = 'Runs · OpenIntern';
  const f = {
    status: query.get('status') || '',
    agent_id: query.get('agent_id') || '',
    session_key: query.get('session_key') || '',
    page: Math.max(1, parseInt(query.get('page') || '1', 10) || 1),
  };
  const state = { alive: true, timer: null, seq: 0 };

  const statusSel = h('select', { id: 'runs-status', name: 'status', 'aria-label': 'Status' },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === f.status }, s.replace('_', ' '))));
  const agentIn = h('input', { id: 'runs-agent', name: 'agent_id', value: f.agent_id, placeholder: 'any agent', list: 'runs-agents', autocomplete: 'off' });
  const agentList = h('datalist', { id: 'runs-agents' });
  const sessionIn = h('input', { id: 'runs-session', name: 'session_key', value: f.session_key, placeholder: 'any session', autocomplete: 'off' });
  const clearBtn = h('button', { type: 'button', id: 'runs-clear' }, 'Clear');
  const form = h('form', { class: 'filters', id: 'runs-filters' },
    h('label', { class: 'field-inline' }, h('span', null, 'Status'), statusSel),
    h('label', { class: 'field-inline' }, h('span', null, 'Agent'), agentIn, agentList),
    h('label', { class: 'field-inline' }, h('span', null, 'Session'), sessionIn),
    h('button', { type: 'submit', class: 'primary' }, 'Filter'), clearBtn);
  const list = h('div', { class: 'list run-list', id: 'run-list' });
  const pagerBox = h('div', { class: 'pager-box' });

  root.append(h('section', { class: 'page page-runs' },
    h('header', { class: 'page-head' }, h('h1', null, 'Runs')),
    form, list, pagerBox));

  const apply = () => {
    f.status = statusSel.value;
    f.agent_id = agentIn.value.trim();
    f.session_key = sessionIn.value.trim();
    f.page = 1;
    load();
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); apply(); });
  statusSel.addEventListener('change', apply);
  clearBtn.addEventListener('click', () => {
    statusSel.value = '';
    agentIn.value = '';
    sessionIn.value = '';
    apply();
  });

  async function load({ quiet = false } = {}) {
    clearTimeout(state.timer);
    const seq = ++state.seq;
    setQuery({ status: f.status, agent_id: f.agent_id, session_key: f.session_key, page: f.page > 1 ? f.page : '' });
    if (!quiet) clear(list).append(spinner('Loading runs…'));
    const q = new URLSearchParams({ page: String(f.page), limit: String(LIMIT) });
    for (const k of ['status', 'agent_id', 'session_key']) if (f[k]) q.set(k, f[k]);
    try {
      const res = await api('GET', `/api/runs?${q}`);
      if (!state.alive || seq !== state.seq) return;
      clear(list);
      if (res.runs.length === 0) {
        const filtered = f.status || f.agent_id || f.session_key;
        list.append(h('p', { class: 'empty', id: 'runs-empty' }, filtered ? 'No runs match these filters.' : 'No runs in this scope yet. Start one from Chat.'));
      } else {
        list.append(h('div', { class: 'row run-row run-head', 'aria-hidden': 'true' },
          h('span', null, 'Run'), h('span', null, 'Status'), h('span', null, 'Agent · session'), h('span', null, 'Input'),
          h('span', null, 'Steps'), h('span', null, 'Created')));
        for (const r of res.runs) list.append(runRow(r));
      }
      pagerBox.replaceChildren(pager({
        page: f.page, limit: LIMIT, total: res.total, noun: res.total === 1 ? 'run' : 'runs',
        onPage: (p) => { f.page = p; load(); },
      }));
      if (res.runs.some((r) => !['completed', 'failed', 'cancelled'].includes(r.status))) {
        state.timer = setTimeout(() => { if (state.alive) load({ quiet: true }); }, 2500);
      }
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      clear(list).append(errorBox(err, () => load()));
      pagerBox.replaceChildren();
    }
  }

  api('GET', '/api/agents?limit=200').then((res) => {
    if (!state.alive) return;
    for (const a of res.agents) agentList.append(h('option', { value: a.agent_id }, a.name || a.agent_id));
  }).catch(() => { /* suggestions only */ });

  load();
  return () => {
    state.alive = false;
    clearTimeout(state.timer);
  };
}

function runRow(r) {
  const tokens = r.usage && r.usage.total_tokens ? `${r.usage.total_tokens} tok` : '';
  return h('div', { class: 'row run-row', dataset: { runId: r.run_id, status: r.status } },
    h('span', { class: 'run-id' }, link(`/trace/${r.run_id}`, h('code', { title: r.run_id }, shortId(r.run_id)))),
    h('span', { class: 'run-status' }, badge(r.status)),
    h('span', { class: 'run-who' }, h('span', null, r.agent_id), h('span', { class: 'muted' }, ` · ${r.session_key}`)),
    h('span', { class: 'run-input', title: r.input }, truncate(r.input, 140),
      r.error ? h('span', { class: 'run-error' }, ` — ${truncate(r.error.message, 100)}`) : null),
    h('span', { class: 'run-steps muted' }, `${r.steps} step${r.steps === 1 ? '' : 's'}`, tokens ? ` · ${tokens}` : '',
      r.started_at ? ` · ${runDuration(r)}` : ''),
    h('span', { class: 'run-created muted' }, timeEl(r.created_at)));
}
