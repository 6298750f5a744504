// Small DOM helpers shared by the pages. Text is always set with textContent,
// never parsed as HTML, so model output and user input cannot inject markup.

// h builds an element: h('a', {href: '/x', class: 'c', onclick: fn}, 'text', child).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') {
        el.addEventListener(k.slice(2), v);
      } else if (k === 'class') {
        el.className = v;
      } else if (k === 'value') {
        el.value = v;
      } else if (k === 'dataset') {
        Object.assign(el.dataset, v);
      } else if (k in el && typeof v !== 'string') {
        el[k] = v;
      } else {
        el.setAttribute(k, v === true ? '' : String(v));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : String(c));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// fmtTime shows a timestamp in the reader's locale.
export function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

// relTime says how long ago a timestamp was ("3 min ago").
export function relTime(iso) {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return fmtTime(iso);
}

// timeEl is a relative time with the exact time on hover.
export function timeEl(iso) {
  return h('time', { datetime: iso || '', title: fmtTime(iso) }, relTime(iso));
}

export function duration(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

export function runDuration(run) {
  if (!run.started_at) return '';
  const end = run.ended_at ? new Date(run.ended_at) : new Date();
  return duration(end - new Date(run.started_at));
}

export function shortId(id) {
  if (!id) return '';
  const m = /^([a-z]+_)(.*)$/.exec(id);
  return m ? m[1] + m[2].slice(-8) : id.slice(-8);
}

export function truncate(s, n) {
  s = String(s ?? '');
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}

// pretty formats a JSON value (or a JSON string) for a <pre>.
export function pretty(v) {
  if (typeof v === 'string') {
    try { return JSON.stringify(JSON.parse(v), null, 2); } catch { return v; }
  }
  try { return JSON.stringify(v, null, 2); } catch { return String(v); }
}

export function badge(status) {
  return h('span', { class: `badge badge-${status || 'unknown'}` }, status || 'unknown');
}

export function spinner(text) {
  return h('div', { class: 'loading', role: 'status' }, h('span', { class: 'dot-pulse', 'aria-hidden': 'true' }), text || 'Loading…');
}

// pager renders "‹ Prev  page 2 of 5 · 230 runs  Next ›".
export function pager({ page, limit, total, noun, onPage }) {
  const pages = Math.max(1, Math.ceil(total / limit));
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', disabled: page <= 1, onclick: () => onPage(page - 1), class: 'pager-prev' }, '‹ Prev'),
    h('span', { class: 'pager-info' }, `page ${page} of ${pages} · ${total} ${noun}`),
    h('button', { type: 'button', disabled: page >= pages, onclick: () => onPage(page + 1), class: 'pager-next' }, 'Next ›'));
}

// download saves a value as a JSON file.
export function downloadJSON(name, value) {
  const blob = new Blob([JSON.stringify(value, null, 2) + '\n'], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, class: 'hidden' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// errorBox shows a failed call in words, with a retry button when one helps.
export function errorBox(err, retry) {
  const status = err && err.status ? `HTTP ${err.status}` : '';
  const code = err && err.code ? err.code : '';
  const title = err && err.status === 404 ? 'Not found'
    : err && err.status === 400 ? 'The request was not accepted'
      : err && err.status === 403 ? 'Not allowed'
      : err && err.status === 401 ? 'Sign-in needed'
      : err && (err.code === 'unreachable' || err.code === 'timeout') ? 'The daemon is not answering'
        : 'Something went wrong';
  return h('div', { class: 'error-box', role: 'alert' },
    h('strong', { class: 'error-title' }, title),
    h('p', { class: 'error-message' }, (err && err.message) || String(err)),
    (status || code) ? h('p', { class: 'error-code muted' }, [status, code].filter(Boolean).join(' · ')) : null,
    retry ? h('button', { type: 'button', onclick: retry }, 'Try again') : null);
}

// toast shows a short-lived message at the bottom of the screen.
export function toast(text, kind = 'info') {
  let box = document.getElementById('toasts');
  if (!box) {
    box = h('div', { id: 'toasts', class: 'toasts', 'aria-live': 'polite' });
    document.body.append(box);
  }
  const t = h('div', { class: `toast toast-${kind}` }, text);
  box.append(t);
  setTimeout(() => t.remove(), kind === 'error' ? 8000 : 3500);
}

// citation shows where an ingested memory came from (a search hit's
// `source`): a link when the source is a web URL, else the file path; with
// the page of a PDF or the heading path of a section.
export function citation(src) {
  if (!src || !src.source) return null;
  const where = [];
  if (src.page) where.push(`p. ${src.page}`);
  if (src.heading) where.push(src.heading);
  // A document fetched from the web links to it (a caller that cannot hold
  // a link passes url: '').
  const url = src.url ?? (/^https?:\/\//.test(src.source) ? src.source : '');
  const name = url
    ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'citation-link' }, src.title || url)
    : h('code', { class: 'citation-path', title: src.title || '' }, src.source);
  return h('span', { class: 'citation', dataset: { source: src.source, page: src.page ? String(src.page) : '' } },
    '— ', name, where.length ? h('span', { class: 'muted' }, ` · ${where.join(' · ')}`) : null);
}
