// The API client: every call carries the current scope, every failure becomes
// an ApiError with a message a person can read.
//
// With auth on, the console is signed in by an HttpOnly session cookie and the
// scope comes from the token behind it: the org and user are the token's, and
// so are never sent (naming them is the server's business, and naming another
// is refused). Only a project may narrow a token that is bound to none.

const SCOPE_KEY = 'openintern.scope';
const SCOPE_FIELDS = ['org_id', 'user_id', 'project_id'];
export const DEFAULT_SCOPE = { org_id: 'org_default', user_id: 'user_default', project_id: '' };

let current = null;
// session is the whoami answer of a cookie sign-in; null while auth is off.
let session = null;

export function getSession() { return session; }

const ROLE_RANK = { viewer: 1, member: 2, admin: 3 };

// mayDo says whether the signed-in token's role allows what need requires
// (always, with auth off). The server decides; this only spares a person
// controls that would be refused.
export function mayDo(need) {
  return !session || (ROLE_RANK[session.role] || 0) >= ROLE_RANK[need];
}

// initScope takes the scope from the URL query when it names one (a shared
// link), else from localStorage, else the defaults; and remembers it. Signed
// in, the org and user are the token's whatever the link says.
export function initScope() {
  const q = new URLSearchParams(location.search);
  let stored;
  try { stored = JSON.parse(localStorage.getItem(SCOPE_KEY) || 'null'); } catch { stored = null; }
  let scope;
  if (session) {
    const project = session.project_bound ? session.scope.project_id
      : (q.has('project_id') ? q.get('project_id') : (sameUser(stored, session.scope) ? stored.project_id : ''));
    scope = { org_id: session.scope.org_id, user_id: session.scope.user_id, project_id: project || '' };
  } else if (q.get('org_id') || q.get('user_id')) {
    scope = {
      org_id: q.get('org_id') || DEFAULT_SCOPE.org_id,
      user_id: q.get('user_id') || DEFAULT_SCOPE.user_id,
      project_id: q.get('project_id') || '',
    };
  } else {
    scope = stored;
    if (!scope || !scope.org_id || !scope.user_id) scope = { ...DEFAULT_SCOPE };
  }
  setScope(scope);
  return current;
}

export function getScope() { return current || initScope(); }

export function setScope(scope) {
  current = {};
  for (const f of SCOPE_FIELDS) current[f] = String(scope[f] || '').trim();
  if (session) {
    // The token decides these; a picker cannot change them.
    current.org_id = session.scope.org_id;
    current.user_id = session.scope.user_id;
    // A bound token's project is no choice: another token of the user
    // must not start in it.
    if (session.project_bound) {
      current.project_id = session.scope.project_id;
      return;
    }
  }
  try { localStorage.setItem(SCOPE_KEY, JSON.stringify(current)); } catch { /* private mode */ }
}

function sameUser(a, b) { return !!a && a.org_id === b.org_id && a.user_id === b.user_id; }

export function scopeText(s = getScope()) {
  return [s.org_id, s.user_id, s.project_id].filter(Boolean).join(' / ');
}

// sentScope is what a request names of the scope: all of it while auth is
// off; signed in, only a project chosen for a token bound to none.
function sentScope() {
  const s = getScope();
  if (!session) return s;
  return { project_id: session.project_bound ? '' : s.project_id };
}

function scopeHeaders() {
  const s = sentScope();
  const headers = {};
  if (s.org_id) headers['x-org-id'] = s.org_id;
  if (s.user_id) headers['x-user-id'] = s.user_id;
  if (s.project_id) headers['x-project-id'] = s.project_id;
  return headers;
}

// withScope adds the scope to a URL's query (page links and EventSource URLs,
// which cannot carry headers).
export function withScope(path, extra) {
  const u = new URL(path, location.origin);
  const s = sentScope();
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

// signInPath is the sign-in page that comes back to next (an in-app path).
export function signInPath(next = location.pathname + location.search + location.hash) {
  return next && next !== '/' && !next.startsWith('/signin') ? '/signin?next=' + encodeURIComponent(next) : '/signin';
}

// safeNext keeps a ?next= target on this origin (no open redirect).
export function safeNext(next) {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\') || next.startsWith('/signin')) return '/';
  return next;
}

let leaving = false;

// toSignIn leaves for the sign-in page once, whoever notices the lost session first.
export function toSignIn() {
  if (leaving) return;
  leaving = true;
  location.assign(signInPath());
}

// initSession finds out whether the console must sign in. With the stored
// scope's headers: auth off answers via "none" and nothing changes; a cookie
// sign-in answers its token (or, when the stored scope is another org's,
// scope_mismatch, so it asks again naming none). It resolves to false after
// sending the page to sign in (unless redirect is false: the sign-in page).
export async function initSession({ redirect = true } = {}) {
  const ask = async (headers) => {
    const resp = await fetch('/api/auth/whoami', { headers: { accept: 'application/json', ...headers }, cache: 'no-store' });
    let data = null;
    try { data = await resp.json(); } catch { data = null; }
    return { status: resp.status, data };
  };
  let stored;
  try { stored = JSON.parse(localStorage.getItem(SCOPE_KEY) || 'null'); } catch { stored = null; }
  const s = stored && stored.org_id && stored.user_id ? stored : DEFAULT_SCOPE;
  let res;
  try {
    res = await ask({ 'x-org-id': s.org_id, 'x-user-id': s.user_id });
    // Signed in, a stored scope that is not the token's (scope_mismatch) or
    // not valid at all is the token's business: ask naming none.
    if (res.status === 403 || res.status === 400) {
      const bare = await ask({});
      if (bare.status === 200) res = bare;
    }
    // An ended session's cookie is cleared with the 401: without it, a
    // daemon with auth off answers as before.
    if (res.status === 401 && res.data && res.data.error && res.data.error.code === 'session_expired') {
      res = await ask({ 'x-org-id': s.org_id, 'x-user-id': s.user_id });
    }
  } catch {
    return true; // unreachable: the page shows it on its first call
  }
  if (res.status === 401) {
    if (!redirect) return true;
    toSignIn();
    return false;
  }
  session = res.status === 200 && res.data && res.data.via === 'cookie' ? res.data : null;
  return true;
}

// signOut ends the web session and goes to the sign-in page.
export async function signOut() {
  try {
    await fetch('/api/auth/logout', { method: 'POST', headers: { accept: 'application/json' } });
  } finally {
    session = null;
    leaving = true;
    location.assign('/signin');
  }
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
  const headers = { accept: 'application/json', ...scopeHeaders() };
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
    // A session that ended (expired, signed out elsewhere, token revoked)
    // or auth turned on: sign in and come back here.
    if (resp.status === 401) toSignIn();
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
  const headers = scopeHeaders();
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.timeout = timeout;
    xhr.setRequestHeader('accept', 'application/json');
    for (const [k, v] of Object.entries(headers)) xhr.setRequestHeader(k, v);
    if (onProgress) {
      xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    }
    if (signal) signal.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = xhr.responseText ? JSON.parse(xhr.responseText) : null; } catch { data = null; }
      if (xhr.status >= 200 && xhr.status < 300 && data !== null) { resolve(data); return; }
      if (xhr.status === 401) toSignIn();
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
