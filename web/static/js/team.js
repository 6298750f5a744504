// Shared by the Teams, Blackboard and Trace pages: a group run's events read
// as a conversation between roles, blackboard entry kinds, member avatars and
// a live event stream that resumes where it stopped.
import { withScope, link } from './api.js';
import { h, fmtTime } from './dom.js';

export const KINDS = [
  ['fact', 'Fact', '事实'],
  ['proposal', 'Proposal', '提案'],
  ['decision', 'Decision', '决定'],
  ['todo', 'Todo', '待办'],
];

export function kindBadge(kind) {
  const k = KINDS.find(([id]) => id === kind);
  return h('span', { class: `kind kind-${kind || 'fact'}`, title: k ? `${k[1]} · ${k[2]}` : kind }, k ? k[1] : (kind || '?'));
}

// hue picks one of a few calm colours for an agent, the same on every page.
export function hue(id) {
  let n = 0;
  for (const ch of String(id || '')) n = (n * 31 + ch.codePointAt(0)) >>> 0;
  return n % 6;
}

export function avatar(agentId, label) {
  const text = String(label || agentId || '?').trim();
  return h('span', { class: `avatar hue-${hue(agentId)}`, 'aria-hidden': 'true', title: agentId }, [...text][0].toUpperCase());
}

// Roster maps agent ids to their roles in one group run (from run.started) or
// in a group (from its members).
export class Roster {
  constructor() {
    this.byAgent = new Map();
    this.lead = '';
  }

  static fromMembers(members) {
    const r = new Roster();
    for (const m of members || []) {
      r.byAgent.set(m.agent_id, { role: m.role_name || m.role_id, roleId: m.role_id, lead: !!m.is_lead });
      if (m.is_lead) r.lead = m.agent_id;
    }
    return r;
  }

  // started reads a group run's run.started payload.
  started(p) {
    if (!p) return;
    if (p.lead) this.lead = p.lead;
    for (const m of p.members || []) {
      this.byAgent.set(m.agent_id, { role: m.role || m.role_id, roleId: m.role_id, lead: m.agent_id === p.lead });
    }
  }

  role(agentId) {
    const m = this.byAgent.get(agentId);
    return m ? m.role : '';
  }

  // who is "Researcher · r1", or the agent id alone.
  who(agentId) {
    if (!agentId) return 'someone';
    if (agentId.startsWith('user:')) return `${agentId.slice(5)} (a person)`;
    const role = this.role(agentId);
    return role ? `${role} · ${agentId}` : agentId;
  }

  whoEl(agentId, cls = '') {
    const role = this.role(agentId);
    return h('span', { class: `who ${cls}` },
      avatar(agentId, role || agentId),
      role ? h('span', { class: 'who-role' }, role) : null,
      agentId && !agentId.startsWith('user:')
        ? h('code', { class: 'who-id' }, agentId)
        : h('span', { class: 'who-role' }, this.who(agentId)));
  }
}

// messageItem renders one event of a group run as a message between roles;
// null for events that are not part of the conversation (or repeat one).
export function messageItem(ev, roster, { groupId } = {}) {
  const p = ev.payload || {};
  const when = h('time', { class: 'conv-time muted', datetime: ev.ts || '', title: fmtTime(ev.ts) }, clock(ev.ts));
  const item = (cls, head, ...body) => h('li', {
    class: `conv-msg ${cls}`, dataset: { type: ev.type, id: String(ev.id || ''), from: p.from || ev.agent_id || '' },
  }, h('div', { class: 'conv-head' }, head, h('span', { class: 'spacer' }), when), body);
  const runLink = (id, text) => (id ? link(`/trace/${id}`, text) : null);
  switch (ev.type) {
    case 'run.started': {
      roster.started(p);
      const n = (p.members || []).length;
      return item('conv-start', h('span', { class: 'conv-title' }, 'Task for the team · 团队任务'),
        h('div', { class: 'text-block conv-text' }, p.input || ''),
        h('div', { class: 'conv-meta muted' },
          `${p.mode || 'serial'} · ${n} member${n === 1 ? '' : 's'}`,
          p.lead ? ` · lead: ${roster.who(p.lead)}` : ''));
    }
    case 'message.task': {
      const decide = p.purpose === 'decide';
      const head = decide
        ? h('span', { class: 'conv-line' }, roster.whoEl(p.from), h('span', { class: 'conv-verb' }, 'weighs the proposals to decide'))
        : h('span', { class: 'conv-line' }, roster.whoEl(p.from), h('span', { class: 'conv-verb' }, 'asks'), roster.whoEl(p.to), h('span', { class: 'conv-verb' }, 'to work on it'));
      return item(`conv-task ${decide ? 'conv-deciding' : ''}`, head,
        h('details', { class: 'fold conv-fold' }, h('summary', null, decide ? 'What the lead was given' : 'The task as sent'),
          h('div', { class: 'text-block conv-text' }, p.content || '')),
        h('div', { class: 'conv-meta' }, runLink(p.task_run_id, `${decide ? 'decision' : 'member'} run →`)));
    }
    case 'message.proposal':
      return item('conv-proposal from-member',
        h('span', { class: 'conv-line' }, roster.whoEl(p.from), h('span', { class: 'conv-verb' }, 'proposes'), kindBadge('proposal')),
        clamp(p.content || ''),
        h('div', { class: 'conv-meta' }, runLink(p.run_id, 'run →')));
    case 'message.status':
      return item('conv-status from-member',
        h('span', { class: 'conv-line' }, roster.whoEl(p.from), h('span', { class: 'conv-verb' }, 'ended'), h('span', { class: `badge badge-${p.status}` }, p.status || '?')),
        p.error ? h('div', { class: 'msg-error' }, `${p.error.message || ''}${p.error.code ? ` (${p.error.code})` : ''}`) : null,
        h('div', { class: 'conv-meta' }, runLink(p.run_id, 'run →')));
    case 'message.evidence':
      return item('conv-evidence from-member',
        h('span', { class: 'conv-line' }, roster.whoEl(p.from || ev.agent_id), h('span', { class: 'conv-verb' }, 'adds evidence'), kindBadge(p.kind)),
        clamp(p.content || ''),
        groupId ? h('div', { class: 'conv-meta' }, link(`/blackboard/${groupId}`, 'on the blackboard →')) : null);
    case 'blackboard.written':
      // Proposals and decisions are their own messages; other entries are notes.
      if (p.kind === 'proposal' || p.kind === 'decision') return null;
      return item('conv-note from-member',
        h('span', { class: 'conv-line' }, roster.whoEl(p.author || ev.agent_id), h('span', { class: 'conv-verb' }, 'wrote on the blackboard'), kindBadge(p.kind)),
        clamp(p.text || ''));
    case 'message.decision':
      return item('conv-decision',
        h('span', { class: 'conv-line' }, roster.whoEl(p.from), h('span', { class: 'conv-verb' }, 'decides'), kindBadge('decision')),
        h('div', { class: 'text-block conv-text conv-decision-text' }, p.content || ''),
        h('div', { class: 'conv-meta' }, runLink(p.run_id, 'run →'),
          groupId ? link(`/blackboard/${groupId}`, 'blackboard →') : null));
    case 'run.completed':
      return item('conv-end conv-ok', h('span', { class: 'conv-title' }, '✓ Team run completed · 完成'),
        p.usage && p.usage.total_tokens ? h('div', { class: 'conv-meta muted' }, `${p.usage.total_tokens} tokens`) : null);
    case 'run.failed':
    case 'run.cancelled':
      return item('conv-end conv-bad', h('span', { class: 'conv-title' }, ev.type === 'run.failed' ? 'Team run failed · 失败' : 'Team run cancelled · 已取消'),
        p.error ? h('div', { class: 'msg-error' }, `${p.error.message || ''}${p.error.code ? ` (${p.error.code})` : ''}`) : null);
    default:
      return null;
  }
}

// clamp shows a long text folded to a few lines with a way to open it.
export function clamp(text) {
  const body = h('div', { class: 'text-block conv-text clamped' }, text);
  if (text.length < 360 && text.split('\n').length <= 6) {
    body.classList.remove('clamped');
    return body;
  }
  const more = h('button', { type: 'button', class: 'link-button clamp-toggle' }, 'Show all');
  more.addEventListener('click', () => {
    const open = body.classList.toggle('clamped');
    more.textContent = open ? 'Show all' : 'Show less';
  });
  return h('div', { class: 'clamp-box' }, body, more);
}

// Progress of a group run per member, from its events.
export function progressOf(events, roster) {
  const st = new Map();
  for (const [id, m] of roster.byAgent) st.set(id, { agentId: id, role: m.role, lead: m.lead, state: 'waiting' });
  const set = (id, state) => {
    if (!id) return;
    const cur = st.get(id) || { agentId: id, role: roster.role(id), lead: id === roster.lead, state: 'waiting' };
    cur.state = state;
    st.set(id, cur);
  };
  for (const ev of events) {
    const p = ev.payload || {};
    switch (ev.type) {
      case 'message.task': set(p.to, p.purpose === 'decide' ? 'deciding' : 'working'); break;
      case 'message.proposal': set(p.from, 'proposed'); break;
      case 'message.status': set(p.from, p.status === 'completed' ? 'proposed' : p.status); break;
      case 'message.decision': set(p.from, 'decided'); break;
      default:
    }
  }
  return [...st.values()].sort((a, b) => Number(b.lead) - Number(a.lead));
}

const STATE_TEXT = {
  waiting: 'waiting', working: 'working…', deciding: 'deciding…', proposed: 'proposed', decided: 'decided',
  failed: 'failed', cancelled: 'cancelled',
};

export function progressEl(items) {
  return h('ul', { class: 'progress-list' }, items.map((m) => h('li', {
    class: `progress-item state-${m.state}`, dataset: { agentId: m.agentId, state: m.state },
  }, avatar(m.agentId, m.role || m.agentId),
  h('span', { class: 'progress-who' }, h('strong', null, m.role || m.agentId), m.lead ? h('span', { class: 'lead-star', title: 'lead' }, ' ★') : null,
    h('code', { class: 'muted' }, ' ', m.agentId)),
  h('span', { class: 'progress-state' }, STATE_TEXT[m.state] || m.state))));
}

// liveStream follows an SSE URL: it resumes after a dropped connection from
// the last event id it saw (the browser sends Last-Event-ID on its own
// reconnects; after a hard close this reopens with ?last_event_id), so no
// stored event is missed or shown twice. onState gets live, reconnecting,
// ended or closed.
//
// fromNow skips what is already stored (a page that has just loaded the
// current state): the first connection asks for ?from=now and the server
// answers with a ready event carrying the id to resume from.
export function liveStream(path, { lastId = 0, fromNow = false, onEvent, onEnd, onState, onReady }) {
  const s = { es: null, lastId, stopped: false, timer: null, wait: 1000, ready: !fromNow };
  const open = () => {
    if (s.stopped) return;
    const q = { last_event_id: s.lastId || '' };
    if (!s.ready && !s.lastId) q.from = 'now';
    const es = new EventSource(withScope(path, q));
    s.es = es;
    es.addEventListener('ready', (m) => {
      try {
        const id = JSON.parse(m.data).last_event_id || 0;
        if (id > s.lastId) s.lastId = id;
      } catch { /* keep the last id seen */ }
      s.ready = true;
      if (onReady) onReady(s.lastId);
    });
    es.onopen = () => { s.wait = 1000; onState && onState('live'); };
    es.onmessage = (m) => {
      let ev;
      try { ev = JSON.parse(m.data); } catch { return; }
      if (ev.id) {
        if (ev.id <= s.lastId) return;
        s.lastId = ev.id;
      }
      onEvent(ev);
    };
    es.addEventListener('end', () => {
      es.close();
      s.es = null;
      s.stopped = true;
      onState && onState('ended');
      onEnd && onEnd();
    });
    es.onerror = () => {
      if (s.stopped) return;
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (an HTTP error, or the daemon restarted): try
        // again with a growing pause, from the last id seen.
        s.es = null;
        onState && onState('reconnecting');
        s.timer = setTimeout(open, s.wait);
        s.wait = Math.min(s.wait * 2, 15000);
      } else {
        onState && onState('reconnecting');
      }
    };
  };
  open();
  return {
    close() {
      s.stopped = true;
      clearTimeout(s.timer);
      if (s.es) s.es.close();
      s.es = null;
    },
    get lastId() { return s.lastId; },
  };
}

export function liveText(state) {
  return { live: '● live', reconnecting: '● reconnecting…', ended: '', closed: 'stream closed' }[state] ?? state;
}

export function clock(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
}

export function finished(status) {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

