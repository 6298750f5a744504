// Agents: every agent of the scope with its state, unread count and last
// activity; create, pause/resume, message; core memory blocks, editable.
// States refresh by polling.
import { api, link, mayDo } from '../api.js';
import { h, clear, errorBox, badge, timeEl, pager, spinner, toast } from '../dom.js';

const LIMIT = 20;
const POLL_MS = 3000;

export function render(root, { query, setQuery }) {
  document.title = 'Agents · OpenIntern';
  const state = { page: Math.max(1, parseInt(query.get('page') || '1', 10) || 1), alive: true, rows: new Map(), timer: null, seq: 0 };

  const list = h('div', { class: 'list agent-list', id: 'agent-list' });
  const pagerBox = h('div', { class: 'pager-box' });
  const status = h('div', { class: 'list-status' });
  const createBox = h('div', { class: 'create-box', hidden: true });
  const newBtn = h('button', { type: 'button', class: 'primary', id: 'agent-new', hidden: !mayDo('admin') }, 'New agent');
  newBtn.addEventListener('click', () => {
    createBox.hidden = !createBox.hidden;
    if (!createBox.hidden) createBox.querySelector('input[name=name]').focus();
  });

  root.append(h('section', { class: 'page page-agents' },
    h('header', { class: 'page-head' },
      h('h1', null, 'Agents'),
      h('span', { class: 'muted live-note' }, 'states refresh every few seconds'),
      h('span', { class: 'spacer' }),
      newBtn),
    createBox, status, list, pagerBox));

  createBox.append(createForm(() => { createBox.hidden = true; state.page = 1; load(); }));

  async function load({ quiet = false } = {}) {
    const seq = ++state.seq;
    if (!quiet) {
      clear(list).append(spinner('Loading agents…'));
      state.rows.clear();
    }
    try {
      const res = await api('GET', `/api/agents?page=${state.page}&limit=${LIMIT}`);
      if (!state.alive || seq !== state.seq) return;
      status.replaceChildren();
      if (res.agents.length === 0 && state.page > 1 && res.total > 0) {
        state.page = Math.ceil(res.total / LIMIT);
        load();
        return;
      }
      const ids = res.agents.map((a) => a.agent_id).join('\n');
      if (ids !== [...state.rows.keys()].join('\n')) {
        clear(list);
        state.rows.clear();
        for (const a of res.agents) {
          const row = agentRow(a);
          state.rows.set(a.agent_id, row);
          list.append(row.el);
        }
        if (res.agents.length === 0) list.append(h('p', { class: 'empty' }, 'No agents in this scope yet.'));
      } else {
        for (const a of res.agents) state.rows.get(a.agent_id).update(a);
      }
      pagerBox.replaceChildren(pager({
        page: state.page, limit: LIMIT, total: res.total, noun: res.total === 1 ? 'agent' : 'agents',
        onPage: (p) => { state.page = p; setQuery({ page: p > 1 ? p : '' }); load(); },
      }));
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      if (quiet && state.rows.size > 0) {
        status.replaceChildren(errorBox(err));
      } else {
        clear(list).append(errorBox(err, () => load()));
      }
    }
  }

  function agentRow(a) {
    const name = h('span', { class: 'agent-name' });
    const stateEl = h('span', { class: 'agent-state' });
    const unread = h('span', { class: 'agent-unread' });
    const last = h('span', { class: 'agent-last' });
    const model = h('span', { class: 'agent-model muted' });
    const toggle = h('button', { type: 'button', class: 'agent-toggle' });
    const msgBox = h('div', { class: 'agent-message', hidden: true });
    const msgBtn = h('button', { type: 'button', class: 'agent-message-toggle' }, 'Message');
    const coreBox = h('div', { class: 'agent-core', hidden: true });
    const coreBtn = h('button', { type: 'button', class: 'agent-core-toggle', 'aria-expanded': 'false' }, 'Core memory');
    let current = a;

    const el = h('div', { class: 'row agent-row', dataset: { agentId: a.agent_id } },
      h('div', { class: 'row-main' },
        h('div', { class: 'row-title' }, name, h('code', { class: 'agent-id' }, a.agent_id)),
        h('div', { class: 'row-facts' },
          h('span', { class: 'fact' }, stateEl),
          h('span', { class: 'fact' }, h('span', { class: 'fact-label' }, 'unread '), unread),
          h('span', { class: 'fact' }, h('span', { class: 'fact-label' }, 'last activity '), last),
          h('span', { class: 'fact' }, model))),
      h('div', { class: 'row-actions' },
        toggle, msgBtn, coreBtn,
        link(`/?agent=${encodeURIComponent(a.agent_id)}`, 'Chat'),
        link(`/runs?agent_id=${encodeURIComponent(a.agent_id)}`, 'Runs')),
      msgBox, coreBox);

    coreBtn.addEventListener('click', () => {
      coreBox.hidden = !coreBox.hidden;
      coreBtn.setAttribute('aria-expanded', String(!coreBox.hidden));
      // Reopening reloads the blocks, unless an edit is not saved yet.
      if (!coreBox.hidden && !coreBox.querySelector('.core-block.dirty')) coreMemory(coreBox, a.agent_id);
    });

    toggle.addEventListener('click', async () => {
      const action = current.state === 'paused' ? 'resume' : 'pause';
      toggle.disabled = true;
      try {
        const res = await api('POST', `/api/agents/${encodeURIComponent(current.agent_id)}/${action}`);
        update({ ...current, state: res.state });
        toast(`${current.name || current.agent_id} is ${res.state}`);
      } catch (err) {
        toast(`Could not ${action} ${current.agent_id}: ${err.message}`, 'error');
      } finally {
        toggle.disabled = false;
      }
    });

    msgBtn.addEventListener('click', () => {
      msgBox.hidden = !msgBox.hidden;
      if (!msgBox.hidden) {
        if (!msgBox.firstChild) msgBox.append(messageForm(a.agent_id, () => { msgBox.hidden = true; load({ quiet: true }); }));
        msgBox.querySelector('textarea').focus();
      }
    });

    function update(x) {
      current = x;
      name.textContent = x.name || x.agent_id;
      stateEl.replaceChildren(badge(x.state));
      el.dataset.state = x.state;
      unread.textContent = String(x.unread ?? 0);
      unread.classList.toggle('has-unread', (x.unread || 0) > 0);
      last.replaceChildren(timeEl(x.updated_at));
      model.textContent = x.model ? `model ${x.model}` : '';
      toggle.textContent = x.state === 'paused' ? 'Resume' : 'Pause';
      toggle.disabled = x.state === 'terminated';
    }
    update(a);
    return { el, update };
  }

  function poll() {
    state.timer = setTimeout(async () => {
      if (!state.alive) return;
      if (!document.hidden) await load({ quiet: true });
      if (state.alive) poll();
    }, POLL_MS);
  }

  load().then(poll);
  return () => {
    state.alive = false;
    clearTimeout(state.timer);
  };
}

// coreMemory shows an agent's core memory blocks (always in its prompt), each
// editable on its own, plus a new block by label.
async function coreMemory(box, agentId) {
  const path = `/api/agents/${encodeURIComponent(agentId)}/core-memory`;
  clear(box).append(spinner('Loading core memory…'));
  let res;
  try {
    res = await api('GET', path);
  } catch (err) {
    clear(box).append(errorBox(coreError(err), () => coreMemory(box, agentId)));
    return;
  }
  const blocks = h('div', { class: 'core-blocks' });
  const editors = new Map();
  const add = (b) => {
    const ed = blockEditor(path, b);
    editors.set(b.label, ed);
    blocks.append(ed.el);
    return ed;
  };
  for (const b of res.blocks || []) add(b);
  const limit = (res.blocks && res.blocks[0] && res.blocks[0].limit) || 2000;

  const label = h('input', { name: 'label', maxlength: '32', pattern: '[a-z0-9_]{1,32}', placeholder: 'new_label', 'aria-label': 'New block label', autocomplete: 'off' });
  const err = h('div', { class: 'form-error' });
  const newForm = h('form', { class: 'row-actions core-new' },
    h('span', { class: 'muted' }, 'New block'), label, h('button', { type: 'submit' }, 'Add'), err);
  newForm.addEventListener('submit', (e) => {
    e.preventDefault();
    err.replaceChildren();
    const l = label.value.trim();
    if (!/^[a-z0-9_]{1,32}$/.test(l)) {
      err.replaceChildren(h('span', { class: 'msg-error' }, 'A label is 1–32 of a–z, 0–9 and _.'));
      return;
    }
    const ed = editors.get(l) || add({ label: l, value: '', limit, updated_at: '' });
    label.value = '';
    ed.focus();
  });
  clear(box).append(h('div', { class: 'card core-card' },
    h('div', { class: 'core-head' }, h('h2', null, 'Core memory'),
      h('span', { class: 'hint' }, 'Always in the agent’s prompt. Each block saves on its own.')),
    blocks, newForm));
}

function blockEditor(path, b) {
  let saved = b.value || '';
  let limit = b.limit || 2000;
  const text = h('textarea', { name: 'value', rows: String(Math.min(10, Math.max(2, saved.split('\n').length + 1))), placeholder: `Empty. What belongs in “${b.label}”?`, 'aria-label': `Core memory block ${b.label}` });
  text.value = saved;
  const count = h('span', { class: 'hint core-count' });
  const when = h('span', { class: 'hint core-when' });
  const save = h('button', { type: 'submit', class: 'primary core-save', disabled: true }, 'Save');
  const revert = h('button', { type: 'button', class: 'core-revert', disabled: true }, 'Revert');
  const err = h('div', { class: 'form-error' });
  const el = h('form', { class: 'core-block', dataset: { label: b.label } },
    h('div', { class: 'core-block-head' }, h('code', { class: 'core-label' }, b.label), when, h('span', { class: 'spacer' }), count),
    text, err, h('div', { class: 'row-actions' }, save, revert));
  const refresh = () => {
    const n = [...text.value].length;
    count.textContent = `${n} / ${limit}`;
    count.classList.toggle('over', n > limit);
    const dirty = text.value !== saved;
    save.disabled = !dirty || n > limit;
    revert.disabled = !dirty;
    el.classList.toggle('dirty', dirty);
  };
  const setWhen = (iso) => { when.replaceChildren(iso && !iso.startsWith('0001') ? h('span', null, 'updated ', timeEl(iso)) : 'never written'); };
  text.addEventListener('input', refresh);
  revert.addEventListener('click', () => { text.value = saved; err.replaceChildren(); refresh(); });
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    save.disabled = true;
    const value = text.value;
    try {
      const res = await api('PUT', path, { blocks: [{ label: b.label, value }] });
      const got = (res.blocks || []).find((x) => x.label === b.label);
      saved = got ? got.value : value;
      if (got && got.limit) limit = got.limit;
      setWhen(got && got.updated_at);
      el.dataset.saved = 'true';
      toast(`Saved core memory “${b.label}”`);
    } catch (e2) {
      err.replaceChildren(errorBox(coreError(e2)));
    } finally {
      refresh();
    }
  });
  setWhen(b.updated_at);
  refresh();
  return { el, focus: () => text.focus() };
}

function coreError(err) {
  if (err && err.status === 404 && /no such route/.test(err.message || '')) {
    return { status: 404, code: err.code, message: 'This daemon has no memory service, so agents have no core memory.' };
  }
  return err;
}

function messageForm(agentId, done) {
  const text = h('textarea', { name: 'content', rows: '3', required: true, placeholder: 'The message lands in the agent’s inbox; it wakes and answers.' });
  const session = h('input', { name: 'session_key', placeholder: 'session (default)', maxlength: '128' });
  const err = h('div', { class: 'form-error' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send to inbox');
  const form = h('form', { class: 'stack' }, text, h('div', { class: 'row-actions' }, session, send), err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    send.disabled = true;
    try {
      const body = { content: text.value };
      if (session.value.trim()) body.session_key = session.value.trim();
      const res = await api('POST', `/api/agents/${encodeURIComponent(agentId)}/messages`, body);
      toast(`Queued for ${res.agent_id} (${res.message_id})`);
      text.value = '';
      done();
    } catch (e2) {
      err.replaceChildren(errorBox(e2));
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

function createForm(done) {
  const f = (label, control, hint) => h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('span', { class: 'hint' }, hint) : null);
  const name = h('input', { name: 'name', required: true, maxlength: '200', placeholder: 'Writer / 写作助手' });
  const id = h('input', { name: 'agent_id', maxlength: '64', pattern: '[a-z0-9][a-z0-9_\\-]*', placeholder: 'from the name' });
  const model = h('input', { name: 'model', maxlength: '200', placeholder: 'the daemon’s default' });
  const tools = h('input', { name: 'tools', placeholder: 'read_file, export_trace' });
  const prompt = h('textarea', { name: 'system_prompt', rows: '4', placeholder: 'You are…' });
  const err = h('div', { class: 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create agent');
  const form = h('form', { class: 'card create-form', id: 'agent-create' },
    h('h2', null, 'New agent'),
    h('div', { class: 'grid-2' },
      f('Name', name), f('Agent id', id, 'lowercase letters, digits, - and _'),
      f('Model', model), f('Tools', tools, 'comma-separated; empty allows every tool')),
    f('System prompt', prompt),
    err,
    h('div', { class: 'row-actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    const body = { name: name.value.trim() };
    if (id.value.trim()) body.agent_id = id.value.trim();
    if (model.value.trim()) body.model = model.value.trim();
    if (prompt.value.trim()) body.system_prompt = prompt.value;
    const tl = tools.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (tl.length) body.tools = tl;
    submit.disabled = true;
    try {
      const a = await api('POST', '/api/agents', body);
      toast(`Created ${a.agent_id}`);
      form.reset();
      done(a);
    } catch (e2) {
      err.replaceChildren(errorBox(e2));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
