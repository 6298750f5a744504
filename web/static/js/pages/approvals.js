// Approvals: the tool calls a policy asks a person about. Pending ones come
// first, with their arguments, the policy's reason and expiry, and Approve /
// Deny buttons. Live: the scope's approval events (SSE) reload the list, and
// a slow poll covers a stream that cannot be opened.
import { api, link, mayDo, withScope } from '../api.js';
import { h, clear, errorBox, badge, timeEl, spinner, shortId, pretty, toast } from '../dom.js';

const STATUSES = ['pending', 'approved', 'denied', 'expired'];

export function render(root, { query, setQuery }) {
  document.title = 'Approvals · OpenIntern';
  const f = { status: STATUSES.includes(query.get('status')) ? query.get('status') : 'pending' };
  const state = { alive: true, es: null, timer: null, seq: 0 };

  const statusSel = h('select', { id: 'approvals-status', name: 'status', 'aria-label': 'Status' },
    STATUSES.map((s) => h('option', { value: s, selected: s === f.status }, s)),
    h('option', { value: 'all', selected: f.status === 'all' }, 'all'));
  const liveEl = h('span', { class: 'live muted', id: 'approvals-live' });
  const list = h('div', { class: 'list approval-list', id: 'approval-list' });
  root.append(h('section', { class: 'page page-approvals' },
    h('header', { class: 'page-head' }, h('h1', null, 'Approvals'), liveEl),
    h('p', { class: 'muted' }, 'Tool calls waiting for a person. Approve and the call runs; deny and the model is told why. Either way the run goes on.'),
    h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      h('label', { class: 'field-inline' }, h('span', null, 'Status'), statusSel)),
    list));
  statusSel.addEventListener('change', () => { f.status = statusSel.value; load(); });

  async function load({ quiet = false } = {}) {
    const seq = ++state.seq;
    setQuery({ status: f.status === 'pending' ? '' : f.status });
    if (!quiet) clear(list).append(spinner('Loading approvals…'));
    const q = new URLSearchParams({ limit: '100' });
    if (f.status !== 'all') q.set('status', f.status);
    try {
      const res = await api('GET', `/api/approvals?${q}`);
      if (!state.alive || seq !== state.seq) return;
      clear(list);
      if (res.approvals.length === 0) {
        list.append(h('p', { class: 'empty', id: 'approvals-empty' },
          f.status === 'pending' ? 'Nothing is waiting for approval.' : 'No approvals match.'));
        return;
      }
      for (const a of res.approvals) list.append(card(a));
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      clear(list).append(errorBox(err, () => load()));
    }
  }

  function card(a) {
    const reasonIn = h('input', { class: 'approval-reason-input', name: 'reason', placeholder: 'reason (optional; a denial\'s is told to the model)', autocomplete: 'off', 'aria-label': 'Reason' });
    const alwaysBox = h('input', { type: 'checkbox', class: 'approval-always', name: 'always' });
    const buttons = [];
    const decide = async (decision) => {
      for (const b of buttons) b.disabled = true;
      try {
        const body = { decision, reason: reasonIn.value.trim() };
        if (decision === 'approve' && alwaysBox.checked) body.always = true;
        await api('POST', `/api/approvals/${encodeURIComponent(a.approval_id)}/resolve`, body);
        toast(decision === 'approve' ? `Approved ${a.tool}; the run goes on.` : `Denied ${a.tool}; the model is told.`, 'ok');
        load({ quiet: true });
      } catch (err) {
        toast(err.message || String(err), 'error');
        for (const b of buttons) b.disabled = false;
        load({ quiet: true });
      }
    };
    let actions = null;
    if (a.status === 'pending' && mayDo('member')) {
      buttons.push(
        h('button', { type: 'button', class: 'primary approval-approve', onclick: () => decide('approve') }, 'Approve'),
        h('button', { type: 'button', class: 'danger approval-deny', onclick: () => decide('deny') }, 'Deny'));
      actions = h('div', { class: 'approval-actions' }, reasonIn, buttons,
        mayDo('admin') ? h('label', { class: 'field-inline', title: 'Write a policy rule allowing this tool for this agent' },
          alwaysBox, h('span', null, 'always for this tool and agent')) : null);
    }
    const decided = a.decided_at
      ? h('p', { class: 'approval-decision muted' }, `${a.status} by ${a.decided_by}`, a.decision_reason ? `: ${a.decision_reason}` : '', ' · ', timeEl(a.decided_at))
      : null;
    return h('article', { class: 'card approval-card', dataset: { approvalId: a.approval_id, status: a.status } },
      h('header', { class: 'approval-head' },
        h('strong', { class: 'approval-tool' }, a.tool), ' ', badge(a.status),
        h('span', { class: 'muted' }, ' · agent ', h('span', { class: 'approval-agent' }, a.agent_id), ' · run ',
          link(`/trace/${a.run_id}`, h('code', { title: a.run_id }, shortId(a.run_id))))),
      h('p', { class: 'approval-reason' }, a.reason || 'The policy asks a person about this call.'),
      h('pre', { class: 'approval-args' }, pretty(a.arguments)),
      h('p', { class: 'muted' }, 'asked ', timeEl(a.created_at),
        a.status === 'pending' ? [' · expires ', timeEl(a.expires_at)] : null),
      decided, actions);
  }

  function setLive(s) {
    liveEl.dataset.state = s;
    liveEl.textContent = { live: '● live', reconnecting: '● reconnecting…', polling: 'refreshing every 10 s' }[s] ?? s;
  }

  // The stream starts now: what is stored already comes from the list.
  function stream() {
    const es = new EventSource(withScope('/api/approvals/stream', { from: 'now' }));
    state.es = es;
    es.onopen = () => setLive('live');
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (ev.type === 'tool.requires_approval' || ev.type === 'approval.resolved') load({ quiet: true });
    };
    es.onerror = () => setLive(es.readyState === EventSource.CLOSED ? 'polling' : 'reconnecting');
  }

  stream();
  load();
  // A safety net for a stream that cannot be opened or lost an event.
  state.timer = setInterval(() => { if (state.alive) load({ quiet: true }); }, 10000);
  return () => {
    state.alive = false;
    clearInterval(state.timer);
    if (state.es) state.es.close();
  };
}
