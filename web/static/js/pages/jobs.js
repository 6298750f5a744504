// Jobs: the scope's ingestion jobs (uploaded files, MinerU PDFs, syncs),
// newest first, each with its progress, counts and errors. Live: every job
// not yet ended is followed through its SSE stream (/api/jobs/:id/stream),
// so its bar moves without a reload; a slow refresh of the list picks up
// jobs queued elsewhere (the API, an agent's mineru_ingest_pdf call).
import { api, upload, mayDo, withScope } from '../api.js';
import { h, clear, errorBox, badge, timeEl, spinner, toast } from '../dom.js';

const MAX_STREAMS = 6; // streams this page keeps open at once
const KIND_LABEL = { local_files: 'files', mineru_pdf: 'MinerU PDF', feishu_sync: 'Feishu sync' };

export function render(root) {
  document.title = 'Jobs · OpenIntern';
  const state = { alive: true, timer: null, seq: 0, streams: new Map(), cards: new Map() };

  const list = h('div', { class: 'list job-list', id: 'job-list' });
  const urlIn = h('input', { id: 'jobs-mineru-url', name: 'url', type: 'url', required: true, maxlength: '4096',
    placeholder: 'https://example.com/report.pdf', autocomplete: 'off', 'aria-label': 'PDF URL' });
  const fileIn = h('input', { id: 'jobs-mineru-file', name: 'files', type: 'file', accept: '.pdf,application/pdf', 'aria-label': 'PDF file' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'jobs-mineru-submit' }, 'Ingest with MinerU');
  const note = h('div', { id: 'jobs-mineru-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'card stack', id: 'jobs-mineru-form' },
    h('h2', null, 'Ingest a PDF with MinerU'),
    h('p', { class: 'muted' }, 'MinerU reads the layout, tables and formulas; each part of the text keeps its page, so search hits cite it.'),
    h('div', { class: 'row-actions' }, urlIn, h('span', { class: 'muted' }, 'or'), fileIn, submit), note);
  urlIn.addEventListener('input', () => { urlIn.required = !fileIn.files.length; });
  fileIn.addEventListener('change', () => { urlIn.required = !fileIn.files.length; });
  root.append(h('section', { class: 'page page-jobs' },
    h('header', { class: 'page-head' }, h('h1', null, 'Jobs'),
      h('span', { class: 'muted live-note' }, 'ingestion jobs of this scope, live')),
    mayDo('member') ? form : null, list));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const fd = new FormData();
    fd.append('mode', 'mineru');
    if (fileIn.files.length) fd.append('files', fileIn.files[0], fileIn.files[0].name);
    else fd.append('url', urlIn.value.trim());
    submit.disabled = true;
    note.replaceChildren(h('span', { class: 'muted' }, 'Queueing…'));
    try {
      const res = await upload('/api/memories/ingest', fd);
      note.replaceChildren(h('p', { class: 'ok-note' }, 'Queued job ', h('code', null, res.job_id), '.'));
      form.reset();
      load({ quiet: true });
    } catch (err) {
      note.replaceChildren(errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });

  async function load({ quiet = false } = {}) {
    const seq = ++state.seq;
    if (!quiet) clear(list).append(spinner('Loading jobs…'));
    try {
      const res = await api('GET', '/api/jobs?limit=50');
      if (!state.alive || seq !== state.seq) return;
      if (!quiet || list.querySelector('.spinner, .empty, .error-box')) clear(list);
      if (res.jobs.length === 0) {
        clear(list).append(h('p', { class: 'empty', id: 'jobs-empty' }, 'No ingestion jobs yet. Upload files on the Memory page, or ingest a PDF with MinerU above.'));
        return;
      }
      list.querySelector('#jobs-empty')?.remove();
      // Keep the cards in the list's order, reusing those that exist.
      let prev = null;
      for (const j of res.jobs) {
        let c = state.cards.get(j.id);
        if (!c) {
          c = card();
          state.cards.set(j.id, c);
        }
        if (!state.streams.has(j.id)) c.update(j);
        if (prev) prev.el.after(c.el); else list.prepend(c.el);
        prev = c;
        follow(j);
      }
    } catch (err) {
      if (!state.alive || seq !== state.seq) return;
      if (!quiet) clear(list).append(errorBox(err, () => load()));
    }
  }

  function follow(j) {
    const ended = ['completed', 'failed', 'cancelled'].includes(j.status);
    if (ended || state.streams.has(j.id) || state.streams.size >= MAX_STREAMS) return;
    const es = new EventSource(withScope(`/api/jobs/${encodeURIComponent(j.id)}/stream`));
    state.streams.set(j.id, es);
    const done = () => { es.close(); state.streams.delete(j.id); };
    es.addEventListener('progress', (ev) => {
      let job;
      try { job = JSON.parse(ev.data); } catch { return; }
      state.cards.get(j.id)?.update(job);
    });
    es.addEventListener('end', () => { done(); load({ quiet: true }); });
    es.onerror = () => { if (es.readyState === EventSource.CLOSED) done(); };
  }

  function card() {
    const bar = h('progress', { class: 'job-progress', max: '1', value: '0' });
    const head = h('header', { class: 'job-head' });
    const line = h('p', { class: 'job-line muted' });
    const extra = h('div', { class: 'job-extra' });
    const el = h('article', { class: 'card job-card' }, head, h('div', { class: 'row-actions' }, bar, line), extra);
    const update = (j) => {
      el.dataset.jobId = j.id;
      el.dataset.status = j.status;
      el.dataset.kind = j.kind;
      bar.max = String(Math.max(j.total || 0, 1));
      bar.value = String(j.status === 'completed' && !j.total ? 1 : (j.done || 0));
      const p = j.params || {};
      const what = p.url || p.name || (j.kind === 'local_files' ? `${j.total} file${j.total === 1 ? '' : 's'}` : '');
      const whatEl = /^https?:\/\//.test(what)
        ? h('a', { href: what, target: '_blank', rel: 'noopener noreferrer', class: 'job-source' }, what)
        : h('code', { class: 'job-source' }, what);
      head.replaceChildren(h('strong', null, KIND_LABEL[j.kind] || j.kind), ' ', badge(j.status), ' ', whatEl,
        h('span', { class: 'muted' }, ' · job ', h('code', { class: 'job-id' }, j.id), ' · ', timeEl(j.created_at)));
      const c = j.counts || {};
      const unit = j.kind === 'mineru_pdf' ? 'pages' : 'items';
      line.replaceChildren(`${j.done || 0}/${j.total || 0} ${unit}`,
        ` · found ${c.found || 0}, new ${c.new || 0}, changed ${c.changed || 0}, unchanged ${c.unchanged || 0}`,
        c.deleted ? `, deleted ${c.deleted}` : '', c.failed ? `, failed ${c.failed}` : '');
      const errs = (j.errors || []).filter((e) => !j.error || !j.error.endsWith(e.message));
      const parts = [];
      if (j.error) parts.push(h('p', { class: 'msg-error job-error' }, j.error));
      if (errs.length) parts.push(h('ul', { class: 'plain msg-error job-errors' }, errs.map((e) => h('li', null, `${e.item}: ${e.message}`))));
      if (!['completed', 'failed', 'cancelled'].includes(j.status) && mayDo('member') && !j.cancel_requested) {
        parts.push(h('button', { type: 'button', class: 'danger job-cancel', onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api('POST', `/api/jobs/${encodeURIComponent(j.id)}/cancel`);
            toast('Cancel requested; the job stops at its current item.');
          } catch (err) {
            toast(err.message || String(err), 'error');
            ev.target.disabled = false;
          }
        } }, 'Cancel'));
      }
      extra.replaceChildren(...parts);
    };
    return { el, update };
  }

  load();
  state.timer = setInterval(() => { if (state.alive) load({ quiet: true }); }, 5000);
  return () => {
    state.alive = false;
    clearInterval(state.timer);
    for (const es of state.streams.values()) es.close();
    state.streams.clear();
  };
}
