// The API client: every call carries the current scope, every failure becomes
// an ApiError with a message a person can read.

const SCOPE_KEY = 'openintern.scope';
const SCOPE_FIELDS = ['org_id', 'user_id', 'project_id'];
export const DEFAULT_SCOPE = { org_id: 'org_default', user_id: 'user_default', project_id: '' };

let current = null;

// initScope takes the scope from the URL query when it names one (a shared
// link), else from localStorage, else the defaults; and remembers it.
export function initScope() {
  const q = new URLSearchParams(location.search);
  let scope;
  if (q.get('org_id') || q.get('user_id')) {
    scope = {
      org_id: q.get('org_id') || DEFAULT_SCOPE.org_id,
      user_id: q.get('user_id') || DEFAULT_SCOPE.user_id,
      project_id: q.get('project_id') || '',
    };
  } else {
    try { scope = JSON.parse(localStorage.getItem(SCOPE_KEY) || 'null'); } catch { scope = null; }
    if (!scope || !scope.org_id || !scope.user_id) scope = { ...DEFAULT_SCOPE };
  }
  setScope(scope);
  return current;
}

export function getScope() { return current || initScope(); }

export function setScope(scope) {
  current = {};
  for (const f of SCOPE_FIELDS) current[f] = String(scope[f] || '').trim();
  try { localStorage.setItem(SCOPE_KEY, JSON.stringify(current)); } catch { /* private mode */ }
}

export function scopeText(s = getScope()) {
  return [s.org_id, s.user_id, s.project_id].filter(Boolean).join(' / ');
}

// withScope adds the scope to a URL's query (page links and EventSource URLs,
// which cannot carry headers).
export function withScope(path, extra) {
  const u = new URL(path, location.origin);
  const s = getScope();
  for (const f of SCOPE_FIELDS) {
    if (s[f]) u.searchParams.set(f, s[f]);
    else u.searchParams.delete(f);
  }
  if (extra) {
    for (const [k, v] of Object.entries(extra)) {
      if (v === undefined || v === null || v === '') u.searchParams.delete(k);
      else u.searchParams.set(k, String(v));
    }
  }
  return u.pathname + u.search + u.hash;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the REST API and returns the decoded JSON (null for 204).
export async function api(method, path, body, { signal, timeout = 20000 } = {}) {
  const s = getScope();
  const headers = { accept: 'application/json', 'x-org-id': s.org_id, 'x-user-id': s.user_id };
  if (s.project_id) headers['x-project-id'] = s.project_id;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(new DOMException('timed out', 'TimeoutError')), timeout);
  if (signal) signal.addEventListener('abort', () => ctrl.abort(signal.reason), { once: true });
  let resp;
  try {
    resp = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: ctrl.signal,
    });
  } catch (err) {
    if (signal && signal.aborted) throw err;
    if (ctrl.signal.aborted) {
      throw new ApiError(0, 'timeout', `The daemon did not answer ${method} ${path} within ${timeout / 1000} s.`);
    }
    throw new ApiError(0, 'unreachable', `Cannot reach the OpenIntern daemon (${err.message}). Is it running?`);
  } finally {
    clearTimeout(timer);
  }
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!resp.ok) {
    const e = data && data.error;
    if (e && e.message) throw new ApiError(resp.status, e.code || 'error', e.message);
    throw new ApiError(resp.status, 'http_' + resp.status, `${method} ${path} failed with HTTP ${resp.status}${text ? ': ' + text.slice(0, 200) : ''}`);
  }
  if (data === null && text) {
    throw new ApiError(resp.status, 'bad_response', `${method} ${path} answered something that is not JSON.`);
  }
  return data;
}

// fetchAllEvents pages through a run's stored events.
export async function fetchAllEvents(runId, { signal, after } = {}) {
  const all = [];
  let cursor = after ? String(after) : '';
  for (;;) {
    const q = new URLSearchParams({ limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    const page = await api('GET', `/api/runs/${encodeURIComponent(runId)}/events?${q}`, undefined, { signal });
    all.push(...page.events);
    if (!page.next_cursor) return all;
    cursor = page.next_cursor;
  }
}

// link is an in-app link that keeps the scope.
export function link(path, ...children) {
  const a = document.createElement('a');
  a.href = withScope(path);
  a.dataset.link = '';
  a.append(...children.map((c) => (c instanceof Node ? c : String(c))));
  return a;
}

// upload posts a multipart form with the scope headers, reporting progress
// (fetch cannot report upload progress, XMLHttpRequest can). It resolves to
// the decoded JSON and fails with an ApiError like api.
export function upload(path, form, { onProgress, signal, timeout = 120000 } = {}) {
  const s = getScope();
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.timeout = timeout;
    xhr.setRequestHeader('accept', 'application/json');
    xhr.setRequestHeader('x-org-id', s.org_id);
    xhr.setRequestHeader('x-user-id', s.user_id);
    if (s.project_id) xhr.setRequestHeader('x-project-id', s.project_id);
    if (onProgress) {
      xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    }
    if (signal) signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { data = null; }
      if (xhr.status >= 200 && xhr.status < 300 && data !== null) { resolve(data); return; }
      const e = data && data.error;
      if (e && e.message) { reject(new ApiError(xhr.status, e.code || 'error', e.message)); return; }
      reject(new ApiError(xhr.status, 'http_' + xhr.status,
        `POST ${path} failed with HTTP ${xhr.status}${xhr.responseText ? ': ' + xhr.responseText.slice(0, 200) : ''}`));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'unreachable', 'Cannot reach the OpenIntern daemon. Is it running?')));
    xhr.addEventListener('timeout', () => reject(new ApiError(0, 'timeout', `The daemon did not answer POST ${path} within ${timeout / 1000} s.`)));
    xhr.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    xhr.send(form);
  });
}
