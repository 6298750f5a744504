// Memory: hybrid search over the scope's memories (showing which leg found
// each hit), one memory in full, a new note, a text/markdown file uploaded to
// archival memory, delete with confirmation. The query, filters and the open
// memory live in the URL so a link shows the same view.
import { api, upload, withScope } from '../api.js';
import { h, clear, errorBox, spinner, timeEl, fmtTime, toast, citation } from '../dom.js';

const STEP = 20; // results per "show more"
const MAX_TOP_K = 100; // the API's largest top_k
const TYPES = [
  ['episodic', 'Episodic', 'something that happened'],
  ['archival', 'Archival', 'reference knowledge'],
];
const MODES = [['hybrid', 'hybrid'], ['vector', 'vector only'], ['fulltext', 'full-text only']];
const FILE_EXT = /\.(txt|md|markdown)$/i;
// Documents ingested by a job (page by page, section by section), followed live.
const JOB_EXT = /\.(pdf|html?|xhtml)$/i;

export function render(root, { query, setQuery }) {
  document.title = 'Memory · OpenIntern';
  const f = {
    q: query.get('q') || '',
    type: TYPES.some(([t]) => t === query.get('type')) ? query.get('type') : '',
    mode: MODES.some(([m]) => m === query.get('mode')) ? query.get('mode') : 'hybrid',
    id: query.get('id') || '',
    topK: STEP,
  };
  const state = { alive: true, seq: 0, detailSeq: 0, results: [] };

  // ---- search form
  const qIn = h('input', {
    id: 'memory-q', name: 'q', type: 'search', value: f.q, required: true, maxlength: '2000',
    placeholder: 'What are you looking for? 例如：发布日期', autocomplete: 'off', 'aria-label': 'Search memories',
  });
  const typeSel = h('select', { id: 'memory-type', name: 'type', 'aria-label': 'Type' },
    h('option', { value: '' }, 'any type'),
    TYPES.map(([t, label]) => h('option', { value: t, selected: t === f.type }, label.toLowerCase())));
  const modeSel = h('select', { id: 'memory-mode', name: 'mode', 'aria-label': 'Search legs' },
    MODES.map(([m, label]) => h('option', { value: m, selected: m === f.mode }, label)));
  const searchForm = h('form', { class: 'filters memory-search', id: 'memory-search', role: 'search' },
    h('span', { class: 'memory-q' }, qIn),
    h('label', { class: 'field-inline' }, h('span', null, 'Type'), typeSel),
    h('label', { class: 'field-inline' }, h('span', null, 'Legs'), modeSel),
    h('button', { type: 'submit', class: 'primary', id: 'memory-search-btn' }, 'Search'));

  // ---- add and upload panels
  const noteBox = h('div', { class: 'memory-tool', hidden: true });
  const uploadBox = h('div', { class: 'memory-tool', hidden: true });
  const noteBtn = h('button', { type: 'button', id: 'memory-add-toggle', 'aria-expanded': 'false' }, 'Add note');
  const uploadBtn = h('button', { type: 'button', id: 'memory-upload-toggle', 'aria-expanded': 'false' }, 'Upload file');
  const toggle = (box, btn, other, otherBtn) => {
    box.hidden = !box.hidden;
    btn.setAttribute('aria-expanded', String(!box.hidden));
    if (!box.hidden) {
      other.hidden = true;
      otherBtn.setAttribute('aria-expanded', 'false');
      const first = box.querySelector('textarea, input[type=file]');
      if (first && first.tagName === 'TEXTAREA') first.focus();
    }
  };
  noteBtn.addEventListener('click', () => toggle(noteBox, noteBtn, uploadBox, uploadBtn));
  uploadBtn.addEventListener('click', () => toggle(uploadBox, uploadBtn, noteBox, noteBtn));
  noteBox.append(noteForm((m) => {
    noteBox.hidden = true;
    noteBtn.setAttribute('aria-expanded', 'false');
    openMemory(m.id);
    if (f.q) search();
  }));
  uploadBox.append(uploadForm((res) => {
    if (res) openMemory(res.id); // a job's document has many memories: search finds them
    if (f.q) search();
  }));

  // ---- results and detail
  const status = h('div', { class: 'memory-status muted', id: 'memory-status', 'aria-live': 'polite' });
  const list = h('div', { class: 'list memory-list', id: 'memory-results' });
  const moreBox = h('div', { class: 'more-box' });
  const detail = h('aside', { class: 'card memory-detail', id: 'memory-detail', hidden: true, 'aria-label': 'Memory' });
  const layout = h('div', { class: 'memory-layout' },
    h('div', { class: 'memory-results-col' }, status, list, moreBox),
    detail);

  root.append(h('section', { class: 'page page-memory' },
    h('header', { class: 'page-head' },
      h('h1', null, 'Memory'),
      h('span', { class: 'muted live-note' }, 'episodic and archival memories of this scope'),
      h('span', { class: 'spacer' }),
      noteBtn, uploadBtn),
    noteBox, uploadBox, searchForm, layout));

  searchForm.addEventListener('submit', (e) => {
    e.preventDefault();
    f.q = qIn.value.trim();
    f.type = typeSel.value;
    f.mode = modeSel.value;
    f.topK = STEP;
    search();
  });
  for (const sel of [typeSel, modeSel]) {
    sel.addEventListener('change', () => {
      f.type = typeSel.value;
      f.mode = modeSel.value;
      f.topK = STEP;
      if (qIn.value.trim()) { f.q = qIn.value.trim(); search(); } else syncQuery();
    });
  }

  function syncQuery() {
    setQuery({ q: f.q, type: f.type, mode: f.mode === 'hybrid' ? '' : f.mode, id: f.id });
  }

  function intro() {
    clear(list).append(h('div', { class: 'memory-intro', id: 'memory-intro' },
      h('p', null, 'Search finds memories two ways at once: the ', h('strong', null, 'vector'),
        ' leg by meaning and the ', h('strong', null, 'full-text'), ' leg by the words themselves. ',
        'Each hit says which leg found it; ', h('span', { class: 'leg leg-both' }, 'both'), ' means the two agree.'),
      h('p', { class: 'muted' }, 'Add a note or upload a text or markdown file to give the agents something to recall.')));
    moreBox.replaceChildren();
    status.replaceChildren();
  }

  async function search({ more = false } = {}) {
    const seq = ++state.seq;
    syncQuery();
    delete list.dataset.q;
    delete list.dataset.type;
    if (!f.q) { intro(); return; }
    if (!more) clear(list).append(spinner('Searching…'));
    moreBox.replaceChildren();
    const q = new URLSearchParams({ q: f.q, top_k: String(f.topK) });
    if (f.type) q.set('type', f.type);
    if (f.mode !== 'hybrid') q.set('mode', f.mode);
    try {
      const res = await api('GET', `/api/memories/search?${q}`);
      if (!state.alive || seq !== state.seq) return;
      state.results = res.results || [];
      showResults();
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      status.replaceChildren();
      clear(list).append(errorBox(explain(err), () => search()));
    }
  }

  function showResults() {
    clear(list);
    // What the list shows, for links and tests: the query and type it answers.
    list.dataset.q = f.q;
    list.dataset.type = f.type;
    const rs = state.results;
    if (rs.length === 0) {
      status.replaceChildren();
      list.append(h('p', { class: 'empty', id: 'memory-empty' },
        f.type ? `No ${f.type} memories match “${f.q}”.` : `No memories match “${f.q}”.`));
      return;
    }
    const legs = { both: 0, vector: 0, fulltext: 0 };
    for (const r of rs) legs[legOf(r)]++;
    status.replaceChildren(
      `${rs.length} result${rs.length === 1 ? '' : 's'} · `,
      h('span', { class: 'leg leg-both' }, 'both'), ` ${legs.both}  `,
      h('span', { class: 'leg leg-fulltext' }, 'full-text'), ` ${legs.fulltext}  `,
      h('span', { class: 'leg leg-vector' }, 'vector'), ` ${legs.vector}`);
    for (const r of rs) list.append(resultRow(r));
    if (rs.length >= f.topK && f.topK < MAX_TOP_K) {
      moreBox.replaceChildren(h('button', {
        type: 'button', id: 'memory-more',
        onclick: () => { f.topK = Math.min(MAX_TOP_K, f.topK + STEP); search({ more: true }); },
      }, `Show ${Math.min(STEP, MAX_TOP_K - f.topK)} more`));
    } else if (rs.length >= MAX_TOP_K) {
      moreBox.replaceChildren(h('p', { class: 'hint' }, `These are the best ${MAX_TOP_K}; a more precise query finds the rest.`));
    }
    markOpen();
  }

  function resultRow(r) {
    const leg = legOf(r);
    const row = h('button', {
      type: 'button', class: 'row memory-row', dataset: { memoryId: r.id, foundBy: leg, type: r.type },
      onclick: () => openMemory(r.id),
    },
    h('span', { class: 'memory-row-head' },
      legBadge(leg),
      h('span', { class: `badge badge-type badge-${r.type}` }, r.type),
      r.agent_id ? h('span', { class: 'muted memory-agent' }, `agent ${r.agent_id}`) : null,
      h('span', { class: 'spacer' }),
      h('span', { class: 'muted memory-score', title: 'fused score' }, r.score >= 0.001 ? r.score.toFixed(3) : '< 0.001'),
      h('span', { class: 'muted' }, timeEl(r.created_at))),
    h('span', { class: 'memory-snippet' }, r.snippet),
    // The row is a button, which cannot hold a link: it shows the source
    // as text, and the memory's detail links it.
    citation(r.source && { ...r.source, url: '' }),
    r.chunk > 0 ? h('span', { class: 'hint' }, `from part ${r.chunk + 1}`) : null);
    return row;
  }

  function markOpen() {
    for (const el of list.querySelectorAll('.memory-row')) {
      const on = el.dataset.memoryId === f.id;
      el.classList.toggle('selected', on);
      if (on) el.setAttribute('aria-current', 'true'); else el.removeAttribute('aria-current');
    }
  }

  // ---- one memory in full
  async function openMemory(id) {
    f.id = id;
    syncQuery();
    markOpen();
    const seq = ++state.detailSeq;
    layout.classList.add('has-detail');
    detail.hidden = false;
    clear(detail).append(spinner('Loading the memory…'));
    if (window.matchMedia('(max-width: 760px)').matches) detail.scrollIntoView({ block: 'start' });
    try {
      const m = await api('GET', `/api/memories/${encodeURIComponent(id)}`);
      if (!state.alive || seq !== state.detailSeq) return;
      showMemory(m);
    } catch (err) {
      if (!state.alive || seq !== state.detailSeq) return;
      clear(detail).append(closeButton(), errorBox(explain(err), () => openMemory(id)));
    }
  }

  function closeDetail() {
    f.id = '';
    state.detailSeq++;
    detail.hidden = true;
    layout.classList.remove('has-detail');
    clear(detail);
    syncQuery();
    markOpen();
  }

  function closeButton() {
    return h('button', { type: 'button', class: 'link-button memory-close', id: 'memory-close', 'aria-label': 'Close', onclick: closeDetail }, 'Close ✕');
  }

  function showMemory(m) {
    const md = m.metadata || {};
    const confirmBox = h('div', { class: 'confirm-box', id: 'memory-confirm', hidden: true, role: 'alertdialog', 'aria-label': 'Confirm delete' });
    const delBtn = h('button', { type: 'button', class: 'danger', id: 'memory-delete' }, 'Delete…');
    delBtn.addEventListener('click', () => {
      confirmBox.hidden = false;
      delBtn.hidden = true;
      confirmBox.querySelector('#memory-delete-cancel').focus();
    });
    const err = h('div', { class: 'form-error' });
    const yes = h('button', { type: 'button', class: 'danger solid', id: 'memory-delete-confirm' }, 'Delete for good');
    const no = h('button', { type: 'button', id: 'memory-delete-cancel' }, 'Cancel');
    no.addEventListener('click', () => { confirmBox.hidden = true; delBtn.hidden = false; err.replaceChildren(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      no.disabled = true;
      err.replaceChildren();
      try {
        await api('DELETE', `/api/memories/${encodeURIComponent(m.id)}`);
        if (!state.alive) return;
        toast(`Deleted ${m.id}`);
        state.results = state.results.filter((r) => r.id !== m.id);
        closeDetail();
        if (f.q) showResults();
      } catch (e2) {
        err.replaceChildren(errorBox(explain(e2)));
      } finally {
        yes.disabled = false;
        no.disabled = false;
      }
    });
    confirmBox.append(
      h('p', null, h('strong', null, 'Delete this memory?'), ' Search and the agents will no longer find it. This cannot be undone.'),
      h('div', { class: 'row-actions' }, yes, no), err);

    const fact = (label, value) => (value === undefined || value === null || value === '' ? null
      : h('div', { class: 'fact' }, h('dt', null, label), h('dd', null, value)));
    // An ingested document's keys are shown as its citation, not one by one.
    const shown = new Set(['filename', 'source', 'doc_hash', 'ingest_key', 'title', 'page', 'heading', 'section']);
    const extra = Object.entries(md).filter(([k]) => !shown.has(k));
    clear(detail).append(
      h('div', { class: 'memory-detail-head' },
        h('span', { class: `badge badge-type badge-${m.type}` }, m.type),
        md.filename ? h('strong', { class: 'memory-filename' }, md.filename) : null,
        h('span', { class: 'spacer' }),
        closeButton()),
      h('code', { class: 'memory-id', id: 'memory-detail-id' }, m.id),
      h('dl', { class: 'facts memory-facts' },
        fact('created', h('span', { title: fmtTime(m.created_at) }, fmtTime(m.created_at))),
        fact('agent', m.agent_id), fact('group', m.group_id),
        fact('source', md.doc_hash
          ? citation({ source: md.source, title: md.title, page: Number(md.page) || 0, heading: md.heading,
            url: /^https?:\/\//.test(md.source || '') ? md.source : '' })
          : md.source),
        fact('importance', m.importance ? String(m.importance) : ''),
        fact('parts', m.chunks > 1 ? String(m.chunks) : ''),
        fact('length', `${[...m.text].length} characters`),
        extra.map(([k, v]) => fact(k, v))),
      h('div', { class: 'text-block memory-text', id: 'memory-text' }, m.text),
      h('div', { class: 'row-actions memory-detail-actions' }, delBtn),
      confirmBox);
  }

  if (f.q) search(); else intro();
  if (f.id) openMemory(f.id);
  return () => { state.alive = false; };
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

// explain turns "the daemon has no memory routes" into words.
function explain(err) {
  if (err && err.status === 404 && /no such route/.test(err.message || '')) {
    return { status: 404, code: err.code, message: 'This daemon has no memory service, so there is nothing to search.' };
  }
  return err;
}

function noteForm(done) {
  const text = h('textarea', { name: 'text', rows: '4', required: true, placeholder: 'What should be remembered? 要记住什么？' });
  const type = h('select', { name: 'type', id: 'memory-note-type', 'aria-label': 'Type' },
    TYPES.map(([t, label, what]) => h('option', { value: t }, `${label} — ${what}`)));
  const err = h('div', { class: 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save note');
  const form = h('form', { class: 'card stack', id: 'memory-note' },
    h('h2', null, 'Add a note'),
    text,
    h('div', { class: 'row-actions' }, h('label', { class: 'field-inline' }, h('span', null, 'Type'), type), h('span', { class: 'spacer' }), submit),
    err);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    if (!text.value.trim()) {
      err.replaceChildren(errorBox({ status: 400, message: 'The note is empty.' }));
      return;
    }
    submit.disabled = true;
    try {
      const m = await api('POST', '/api/memories', { type: type.value, text: text.value });
      toast(`Saved ${m.type} memory ${m.id}`);
      form.reset();
      done(m);
    } catch (e2) {
      err.replaceChildren(errorBox(explain(e2)));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function uploadForm(done) {
  const file = h('input', { type: 'file', name: 'file', id: 'memory-file', accept: '.txt,.md,.markdown,.pdf,.html,.htm,text/plain,text/markdown,application/pdf,text/html', class: 'file-input' });
  const chosen = h('span', { class: 'muted memory-file-name' }, 'No file chosen.');
  const pick = h('label', { class: 'button-like', for: 'memory-file' }, 'Choose file…');
  const drop = h('div', { class: 'drop-zone', id: 'memory-drop' },
    file, pick, chosen,
    h('span', { class: 'hint' }, 'Text or markdown (.txt, .md), UTF-8; a PDF or an HTML page is ingested by a job, page by page. Or drop a file here.'));
  const progress = h('progress', { id: 'memory-progress', max: '100', value: '0', hidden: true });
  const result = h('div', { class: 'memory-upload-result', id: 'memory-upload-result', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'memory-upload', disabled: true }, 'Upload to archival memory');
  const form = h('form', { class: 'card stack', id: 'memory-upload-form' },
    h('h2', null, 'Upload a file to archival memory'),
    drop,
    h('div', { class: 'row-actions' }, progress, h('span', { class: 'spacer' }), submit),
    result);
  let picked = null;

  const choose = (fl) => {
    picked = fl || null;
    result.replaceChildren();
    if (!picked) {
      chosen.textContent = 'No file chosen.';
      submit.disabled = true;
      return;
    }
    chosen.textContent = `${picked.name} · ${size(picked.size)}`;
    if (!FILE_EXT.test(picked.name) && !JOB_EXT.test(picked.name) && picked.name.includes('.')) {
      result.replaceChildren(errorBox({ status: 400, code: 'unsupported_file', message: `${picked.name} is not a .txt or .md file, a PDF or an HTML page; only those can be stored.` }));
      submit.disabled = true;
      return;
    }
    submit.disabled = false;
  };
  file.addEventListener('change', () => choose(file.files[0]));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('dragging'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('dragging');
    if (e.dataTransfer && e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!picked) return;
    const fd = new FormData();
    const asJob = JOB_EXT.test(picked.name);
    fd.append(asJob ? 'files' : 'file', picked, picked.name);
    submit.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    result.replaceChildren(h('span', { class: 'muted' }, `Uploading ${picked.name}…`));
    try {
      const res = await upload('/api/memories/ingest', fd, {
        onProgress: (loaded, total) => { progress.value = Math.round((loaded / total) * 100); },
      });
      progress.value = 100;
      if (asJob) {
        followJob(res.job_id, picked.name, result, () => done(null));
        form.reset();
        picked = null;
        chosen.textContent = 'No file chosen.';
        return;
      }
      const name = (res.metadata && res.metadata.filename) || picked.name;
      result.replaceChildren(h('p', { class: 'ok-note' },
        `Stored ${name} as archival memory `, h('code', null, res.id),
        res.chunks > 1 ? ` in ${res.chunks} parts.` : '.'));
      toast(`Uploaded ${name}`);
      form.reset();
      picked = null;
      chosen.textContent = 'No file chosen.';
      done(res);
    } catch (e2) {
      result.replaceChildren(errorBox(explain(e2)));
      submit.disabled = false;
    } finally {
      setTimeout(() => { progress.hidden = true; }, 600);
    }
  });
  return form;
}

// followJob shows an ingestion job's live progress from its SSE stream
// (`event: progress` with the job, `event: end` when it has ended).
function followJob(jobId, name, result, ended) {
  const bar = h('progress', { class: 'job-progress', max: '1', value: '0' });
  const line = h('span', { class: 'job-line' }, `Ingesting ${name}: job `, h('code', null, jobId), ' queued…');
  const box = h('div', { class: 'job-status', id: 'memory-job', dataset: { jobId, status: 'queued' } }, bar, ' ', line);
  result.replaceChildren(box);
  const es = new EventSource(withScope(`/api/jobs/${encodeURIComponent(jobId)}/stream`));
  let last = null;
  es.addEventListener('progress', (ev) => {
    last = JSON.parse(ev.data);
    box.dataset.status = last.status;
    bar.max = String(Math.max(last.total, 1));
    bar.value = String(last.done);
    const c = last.counts || {};
    line.replaceChildren(`${name}: job `, h('code', null, jobId), ` ${last.status} · ${last.done}/${last.total}`,
      c.failed ? ` · ${c.failed} failed` : '');
  });
  es.addEventListener('end', () => {
    es.close();
    const errs = (last && last.errors) || [];
    if (last && last.status === 'completed' && !errs.length) {
      toast(`Ingested ${name}`);
    }
    if (errs.length) box.append(h('ul', { class: 'plain msg-error' }, errs.map((e) => h('li', null, `${e.item}: ${e.message}`))));
    ended();
  });
}

function size(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}
