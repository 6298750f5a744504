// Blackboard: a group's shared entries — facts, proposals, decisions, todos —
// newest first, a page at a time. New entries arrive live from the group's
// stream and appear at the top; decisions stand out. Filter by kind and
// author, search (showing which leg found each hit), post an entry. The
// filters live in the URL so a link shows the same view. Without a group id
// the page asks which group.
import { api, link, getScope } from '../api.js';
import { h, clear, errorBox, spinner, timeEl, toast, pager, truncate } from '../dom.js';
import { KINDS, kindBadge, Roster, liveStream, liveText, clamp } from '../team.js';

const PAGE = 50;
const GROUP_LIMIT = 20;

export function render(root, ctx) {
  return ctx.params.groupId ? board(root, ctx) : groupPicker(root);
}

// ---- /blackboard: which group?

function groupPicker(root) {
  document.title = 'Blackboard · OpenIntern';
  const state = { alive: true, page: 1, seq: 0 };
  const list = h('div', { class: 'list team-list', id: 'bb-groups' });
  const pagerBox = h('div', { class: 'pager-box' });
  root.append(h('section', { class: 'page page-blackboard' },
    h('header', { class: 'page-head' }, h('h1', null, 'Blackboard'),
      h('span', { class: 'muted live-note' }, 'each group’s shared notes, proposals and decisions · 小组黑板')),
    h('div', { class: 'card bb-pick' }, h('h2', null, 'Pick a group · 选择小组'), list, pagerBox)));
  async function load() {
    const seq = ++state.seq;
    clear(list).append(spinner('Loading groups…'));
    try {
      const res = await api('GET', `/api/groups?page=${state.page}&limit=${GROUP_LIMIT}`);
      if (!state.alive || seq !== state.seq) return;
      clear(list);
      if (res.groups.length === 0) {
        list.append(h('p', { class: 'empty', id: 'bb-groups-empty' }, 'No groups in this scope yet. Create one on ', link('/orchestrator', 'Teams'), '.'));
      }
      for (const g of res.groups) {
        list.append(h('div', { class: 'row team-row', dataset: { groupId: g.group_id } },
          h('span', { class: 'row-title' }, link(`/blackboard/${g.group_id}`, g.name), h('code', { class: 'muted' }, g.group_id)),
          g.description ? h('span', { class: 'muted team-desc' }, truncate(g.description, 120)) : null));
      }
      pagerBox.replaceChildren(res.total > GROUP_LIMIT ? pager({
        page: state.page, limit: GROUP_LIMIT, total: res.total, noun: 'groups', onPage: (p) => { state.page = p; load(); },
      }) : '');
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      clear(list).append(errorBox(err, load));
    }
  }
  load();
  return () => { state.alive = false; };
}

// ---- /blackboard/:groupId

function board(root, { params, query, setQuery }) {
  const groupId = params.groupId;
  const base = `/api/groups/${encodeURIComponent(groupId)}`;
  document.title = `Blackboard ${groupId} · OpenIntern`;
  const f = {
    kind: KINDS.some(([k]) => k === query.get('kind')) ? query.get('kind') : '',
    author: query.get('author') || '',
    q: query.get('q') || '',
  };
  const state = {
    alive: true,
    seq: 0,
    page: 1,
    total: 0,
    entries: [], // shown, newest first
    known: new Set(),
    baseline: null, // { ms, ids }: entries at or before it are not "new"
    baselineSet: false,
    loading: false,
    pending: [], // live entries that came while the list was loading
    unseen: new Set(), // live entries while a search is shown
    stream: null,
    roster: new Roster(),
    group: null,
  };
  const me = `user:${getScope().user_id}`;

  // ---- header and tools
  const title = h('span', { class: 'bb-group-name', id: 'bb-group-name' }, groupId);
  const liveEl = h('span', { class: 'live-indicator', id: 'bb-live' });
  const countEl = h('span', { class: 'muted bb-count', id: 'bb-count' });
  const kindBtns = [['', 'All', '全部'], ...KINDS].map(([k, label, zh]) => h('button', {
    type: 'button', class: `bb-kind-btn ${k ? `kind-btn-${k}` : ''}`, dataset: { kind: k }, title: zh,
    'aria-pressed': String(k === f.kind), onclick: () => { f.kind = k; apply(); },
  }, label));
  const authorSel = h('select', { id: 'bb-author', name: 'author', 'aria-label': 'Author' }, h('option', { value: '' }, 'anyone'));
  const qIn = h('input', {
    id: 'bb-q', name: 'q', type: 'search', value: f.q, maxlength: '2000', autocomplete: 'off',
    placeholder: 'Search the blackboard… 搜索', 'aria-label': 'Search the blackboard',
  });
  const searchForm = h('form', { class: 'filters bb-filters', id: 'bb-filters', role: 'search' },
    h('div', { class: 'segmented', role: 'group', 'aria-label': 'Kind' }, kindBtns),
    h('label', { class: 'field-inline' }, h('span', null, 'Author'), authorSel),
    h('span', { class: 'bb-q' }, qIn),
    h('button', { type: 'submit', class: 'primary', id: 'bb-search' }, 'Search'),
    h('button', { type: 'button', id: 'bb-clear' }, 'Clear'));
  const postBox = h('div', { hidden: true });
  const postBtn = h('button', { type: 'button', class: 'primary', id: 'bb-post-toggle', 'aria-expanded': 'false' }, 'Post an entry');
  postBtn.addEventListener('click', () => {
    postBox.hidden = !postBox.hidden;
    postBtn.setAttribute('aria-expanded', String(!postBox.hidden));
    if (!postBox.hidden) postBox.querySelector('textarea').focus();
  });
  const status = h('div', { class: 'memory-status muted', id: 'bb-status', 'aria-live': 'polite' });
  const newNote = h('div', { class: 'bb-new-note', id: 'bb-new-note', hidden: true });
  const list = h('div', { class: 'bb-list', id: 'bb-list', 'aria-live': 'polite' });
  const moreBox = h('div', { class: 'more-box' });

  root.append(h('section', { class: 'page page-blackboard' },
    h('header', { class: 'page-head' },
      h('h1', null, 'Blackboard'), title, h('code', { class: 'muted' }, groupId), liveEl,
      h('span', { class: 'spacer' }),
      link(`/orchestrator?group=${encodeURIComponent(groupId)}`, 'Team →'), postBtn),
    postBox, searchForm, h('div', { class: 'bb-statusline' }, countEl, status), newNote, list, moreBox));
  postBox.append(postForm());

  searchForm.addEventListener('submit', (e) => { e.preventDefault(); f.q = qIn.value.trim(); apply(); });
  authorSel.addEventListener('change', () => { f.author = authorSel.value; apply(); });
  document.getElementById('bb-clear').addEventListener('click', () => {
    f.kind = '';
    f.author = '';
    f.q = '';
    qIn.value = '';
    authorSel.value = '';
    apply();
  });

  function apply() {
    for (const b of kindBtns) b.setAttribute('aria-pressed', String(b.dataset.kind === f.kind));
    setQuery({ kind: f.kind, author: f.author, q: f.q });
    load();
  }

  function setLive(s) {
    liveEl.dataset.state = s;
    liveEl.textContent = liveText(s);
  }

  function showCount() {
    countEl.textContent = f.q ? '' : `${state.total} ${state.total === 1 ? 'entry' : 'entries'}${f.kind || f.author ? ' match' : ''}`;
  }

  // ---- group and authors

  async function loadGroup() {
    try {
      const g = await api('GET', base);
      if (!state.alive) return;
      state.group = g;
      state.roster = Roster.fromMembers(g.members);
      title.textContent = g.name;
      document.title = `Blackboard ${g.name} · OpenIntern`;
      const opts = [['', 'anyone'], ...g.members.map((m) => [m.agent_id, `${m.role_name || m.role_id} · ${m.agent_id}${m.is_lead ? ' ★' : ''}`]), [me, 'you']];
      if (f.author && !opts.some(([v]) => v === f.author)) opts.push([f.author, f.author]);
      authorSel.replaceChildren(...opts.map(([v, label]) => h('option', { value: v, selected: v === f.author }, label)));
      // Names arrived: show who wrote what.
      for (const el of list.querySelectorAll('.bb-entry, .bb-hit')) {
        const who = el.querySelector('.bb-who');
        if (who) who.replaceWith(whoEl(el.dataset.author));
      }
    } catch { /* the list shows the error, if any */ }
  }

  function whoEl(author) {
    return h('span', { class: 'bb-who' }, author === me ? h('span', { class: 'who' }, h('span', { class: 'who-role' }, 'you')) : state.roster.whoEl(author));
  }

  // ---- the list

  function passes(e) {
    return (!f.kind || e.kind === f.kind) && (!f.author || e.author === f.author);
  }

  async function load({ more = false } = {}) {
    const seq = ++state.seq;
    moreBox.replaceChildren();
    newNote.hidden = true;
    state.unseen.clear();
    delete list.dataset.q;
    if (f.q) {
      state.loading = false;
      state.pending = [];
      search(seq);
      return;
    }
    if (!more) {
      state.page = 1;
      state.loading = true;
      state.pending = [];
      clear(list).append(spinner('Loading the blackboard…'));
      status.replaceChildren();
    }
    const q = new URLSearchParams({ page: String(more ? state.page + 1 : 1), limit: String(PAGE) });
    if (f.kind) q.set('kind', f.kind);
    if (f.author) q.set('author', f.author);
    let res;
    try {
      res = await api('GET', `${base}/blackboard?${q}`);
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      state.loading = false;
      if (more) moreBox.replaceChildren(errorBox(err, () => load({ more: true })));
      else clear(list).append(errorBox(err, () => load()));
      return;
    }
    if (!state.alive || seq !== state.seq) return;
    state.total = res.total;
    if (!more) {
      clear(list);
      state.entries = [];
      state.known = new Set();
      if (!state.baselineSet && !f.kind && !f.author) setBaseline(res.entries);
    } else {
      state.page++;
    }
    const frag = document.createDocumentFragment();
    for (const e of res.entries) {
      if (state.known.has(e.memory_id)) continue; // shifted down by live entries
      state.known.add(e.memory_id);
      state.entries.push(e);
      frag.append(entryEl(e));
    }
    list.append(frag);
    list.dataset.kind = f.kind;
    list.dataset.author = f.author;
    if (!more) {
      state.loading = false;
      if (state.entries.length === 0) list.append(emptyEl());
      for (const e of state.pending) live(e);
      state.pending = [];
      list.dataset.ready = 'true';
      if (!state.firstShown) {
        state.firstShown = true;
        performance.mark('blackboard-first-entries');
        list.dataset.shownAt = String(Math.round(performance.now()));
      }
      follow();
    }
    showCount();
    showMore();
  }

  function emptyEl() {
    return h('p', { class: 'empty', id: 'bb-empty' }, f.kind || f.author
      ? 'No entries match these filters.'
      : 'The blackboard is empty. Members write here during group runs; you can post too. 黑板是空的。');
  }

  function showMore() {
    const left = state.total - state.entries.length;
    if (f.q || left <= 0) { moreBox.replaceChildren(); return; }
    moreBox.replaceChildren(h('button', { type: 'button', id: 'bb-more', onclick: (e) => { e.target.disabled = true; e.target.textContent = 'Loading…'; load({ more: true }); } },
      `Show ${Math.min(PAGE, left)} more · ${left} older`));
  }

  // live handles an entry from the stream (or from this page's own post).
  function live(e) {
    if (!e || !e.memory_id || e.group_id !== groupId) return;
    if (state.loading) { state.pending.push(e); return; }
    if (state.known.has(e.memory_id)) return;
    // The stream first replays the group's stored events: entries at or
    // before the newest listed one are old news.
    const b = state.baseline;
    const ms = Date.parse(e.created_at);
    if (b && (ms < b.ms || (ms === b.ms && b.ids.has(e.memory_id)))) return;
    if (!passes(e)) return;
    if (f.q) {
      state.unseen.add(e.memory_id);
      const n = state.unseen.size;
      newNote.hidden = false;
      newNote.replaceChildren(`${n} new ${n === 1 ? 'entry' : 'entries'} since this search. `,
        h('button', { type: 'button', class: 'link-button', onclick: () => { f.q = ''; qIn.value = ''; apply(); } }, 'Show the latest'));
      return;
    }
    state.known.add(e.memory_id);
    state.entries.unshift(e);
    state.total++;
    const empty = list.querySelector('#bb-empty');
    if (empty) empty.remove();
    const el = entryEl(e);
    el.classList.add('fresh');
    list.prepend(el);
    showCount();
  }

  // setBaseline remembers the newest stored entries (of any kind and author)
  // when the page opened.
  function setBaseline(entries) {
    state.baselineSet = true;
    const top = entries[0];
    if (!top) return;
    const ms = Date.parse(top.created_at);
    state.baseline = { ms, ids: new Set(entries.filter((e) => Date.parse(e.created_at) === ms).map((e) => e.memory_id)) };
  }

  // follow opens the group's stream once the baseline is known.
  async function follow() {
    if (state.stream || state.following) return;
    state.following = true;
    if (!state.baselineSet) {
      try {
        const res = await api('GET', `${base}/blackboard?limit=${PAGE}`);
        if (!state.alive) return;
        setBaseline(res.entries);
      } catch {
        state.following = false;
        return; // the list shows the error; a retry comes back here
      }
    }
    if (!state.alive) return;
    state.stream = liveStream(`${base}/stream`, {
      fromNow: true, // the list above is the state; only news is wanted
      onEvent: (ev) => {
        if (ev.type === 'blackboard.written') live(ev.payload);
        if (ev.id) readUpTo(ev.id);
      },
      onState: setLive,
      // Entries written between the list and the stream's start: read the
      // first page again (live() drops what is already shown).
      onReady: async (lastId) => {
        try {
          const res = await api('GET', `${base}/blackboard?limit=${PAGE}`);
          if (state.alive) [...res.entries].reverse().forEach(live);
        } catch { /* the stream still brings everything from now on */ }
        readUpTo(lastId);
      },
    });
  }

  // readUpTo records on the live indicator the group's last event id the
  // page has shown everything up to, so a test can wait for it.
  function readUpTo(id) {
    if (id > (+liveEl.dataset.lastEventId || 0)) liveEl.dataset.lastEventId = String(id);
  }

  function entryEl(e) {
    const decision = e.kind === 'decision';
    return h('article', {
      class: `bb-entry bb-${e.kind}${decision ? ' bb-decision-entry' : ''}`,
      dataset: { memoryId: e.memory_id, kind: e.kind, author: e.author },
    },
    h('div', { class: 'bb-entry-head' },
      decision ? h('span', { class: 'bb-star', 'aria-hidden': 'true' }, '★') : null,
      kindBadge(e.kind), whoEl(e.author),
      h('span', { class: 'spacer' }),
      e.run_id ? link(`/trace/${e.run_id}`, 'run') : null,
      h('span', { class: 'muted bb-time' }, timeEl(e.created_at))),
    clamp(e.text || ''));
  }

  // ---- search

  async function search(seq) {
    clear(list).append(spinner('Searching…'));
    status.replaceChildren();
    showCount();
    const q = new URLSearchParams({ q: f.q });
    if (f.kind) q.set('kind', f.kind);
    try {
      const res = await api('GET', `${base}/blackboard?${q}`);
      if (!state.alive || seq !== state.seq) return;
      // The search answers by kind; the author filter applies here.
      const hits = (res.results || []).filter((r) => !f.author || r.author === f.author);
      clear(list);
      list.dataset.q = f.q;
      list.dataset.kind = f.kind;
      list.dataset.author = f.author;
      if (hits.length === 0) {
        list.append(h('p', { class: 'empty', id: 'bb-empty' }, `Nothing on the blackboard matches “${f.q}”.`));
        follow();
        return;
      }
      const legs = { both: 0, vector: 0, fulltext: 0 };
      for (const r of hits) legs[legOf(r)]++;
      status.replaceChildren(`${hits.length} result${hits.length === 1 ? '' : 's'} · `,
        h('span', { class: 'leg leg-both' }, 'both'), ` ${legs.both}  `,
        h('span', { class: 'leg leg-fulltext' }, 'full-text'), ` ${legs.fulltext}  `,
        h('span', { class: 'leg leg-vector' }, 'vector'), ` ${legs.vector}`);
      for (const r of hits) list.append(hitEl(r));
      follow();
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      clear(list).append(errorBox(err, () => load()));
    }
  }

  function hitEl(r) {
    const leg = legOf(r);
    const body = h('div', { class: 'bb-hit-body' }, h('div', { class: 'memory-snippet' }, r.snippet));
    const open = h('button', { type: 'button', class: 'link-button bb-open' }, 'Read in full');
    open.addEventListener('click', async () => {
      open.disabled = true;
      try {
        const e = await api('GET', `${base}/blackboard/${encodeURIComponent(r.id)}`);
        if (!state.alive) return;
        body.replaceChildren(h('div', { class: 'text-block conv-text bb-full' }, e.text));
        open.remove();
      } catch (err) {
        body.append(errorBox(err));
        open.disabled = false;
      }
    });
    return h('article', { class: `bb-entry bb-hit bb-${r.kind}${r.kind === 'decision' ? ' bb-decision-entry' : ''}`, dataset: { memoryId: r.id, kind: r.kind || '', author: r.author || '', foundBy: leg } },
      h('div', { class: 'bb-entry-head' },
        legBadge(leg), kindBadge(r.kind), whoEl(r.author),
        h('span', { class: 'spacer' }),
        h('span', { class: 'muted memory-score', title: 'fused score' }, r.score >= 0.001 ? r.score.toFixed(3) : '< 0.001'),
        h('span', { class: 'muted bb-time' }, timeEl(r.created_at))),
      body, open);
  }

  // ---- post

  function postForm() {
    const kind = h('select', { id: 'bb-post-kind', name: 'kind', 'aria-label': 'Kind' },
      KINDS.map(([k, label, zh]) => h('option', { value: k }, `${label} · ${zh}`)));
    const text = h('textarea', { id: 'bb-post-text', name: 'text', rows: '3', required: true, maxlength: '65536', placeholder: 'What should the team know? 团队需要知道什么？ (Ctrl+Enter posts)' });
    const err = h('div', { class: 'form-error' });
    const submit = h('button', { type: 'submit', class: 'primary', id: 'bb-post' }, 'Post');
    const form = h('form', { class: 'card stack', id: 'bb-post-form' },
      text,
      h('div', { class: 'row-actions' }, h('label', { class: 'field-inline' }, h('span', null, 'Kind'), kind),
        h('span', { class: 'hint' }, 'Posted as you; members read the blackboard in their next turns.'),
        h('span', { class: 'spacer' }), submit),
      err);
    text.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.replaceChildren();
      if (!text.value.trim()) {
        err.replaceChildren(errorBox({ status: 400, message: 'The entry is empty. 内容为空。' }));
        return;
      }
      submit.disabled = true;
      try {
        const entry = await api('POST', `${base}/blackboard`, { kind: kind.value, text: text.value });
        if (!state.alive) return;
        toast(`Posted a ${entry.kind}`);
        text.value = '';
        live(entry);
      } catch (e2) {
        err.replaceChildren(errorBox(e2));
      } finally {
        submit.disabled = false;
      }
    });
    return form;
  }

  for (const b of kindBtns) b.setAttribute('aria-pressed', String(b.dataset.kind === f.kind));
  if (f.author) authorSel.append(h('option', { value: f.author, selected: true }, f.author));
  load();
  loadGroup();
  return () => {
    state.alive = false;
    if (state.stream) state.stream.close();
  };
}

function legOf(r) {
  const legs = r.found_by || [];
  if (legs.includes('vector') && legs.includes('fulltext')) return 'both';
  return legs.includes('fulltext') ? 'fulltext' : 'vector';
}

function legBadge(leg) {
  const text = { both: 'both', vector: 'vector', fulltext: 'full-text' }[leg];
  const title = {
    both: 'found by the vector (meaning) and the full-text (words) leg',
    vector: 'found by the vector leg: similar meaning, not the same words',
    fulltext: 'found by the full-text leg only: the words match',
  }[leg];
  return h('span', { class: `leg leg-${leg}`, title }, text);
}
