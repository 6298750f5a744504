// The console's shell: sign-in state, scope picker, navigation and a tiny
// client-side router.
import { initScope, initSession, getSession, getScope, setScope, scopeText, withScope, signOut } from './api.js';
import { h, clear, errorBox } from './dom.js';
import * as chat from './pages/chat.js';
import * as agents from './pages/agents.js';
import * as runs from './pages/runs.js';
import * as trace from './pages/trace.js';
import * as memory from './pages/memory.js';
import * as teams from './pages/teams.js';
import * as blackboard from './pages/blackboard.js';
import * as skills from './pages/skills.js';
import * as approvals from './pages/approvals.js';
import * as jobs from './pages/jobs.js';
import * as signin from './pages/signin.js';

const routes = [
  { re: /^\/$/, nav: 'chat', page: chat },
  { re: /^\/agents\/?$/, nav: 'agents', page: agents },
  { re: /^\/runs\/?$/, nav: 'runs', page: runs },
  { re: /^\/trace\/([^/]+)\/?$/, nav: 'runs', page: trace, params: ['runId'] },
  { re: /^\/orchestrator\/?$/, nav: 'teams', page: teams },
  { re: /^\/blackboard(?:\/([^/]+))?\/?$/, nav: 'blackboard', page: blackboard, params: ['groupId'] },
  { re: /^\/memory\/?$/, nav: 'memory', page: memory },
  { re: /^\/skills\/?$/, nav: 'skills', page: skills },
  { re: /^\/approvals\/?$/, nav: 'approvals', page: approvals },
  { re: /^\/jobs\/?$/, nav: 'jobs', page: jobs },
  // bare: no navigation or scope, and no scope in the address bar.
  { re: /^\/signin\/?$/, nav: '', page: signin, bare: true },
];

const main = document.getElementById('main');
let cleanup = null;

function match(pathname) {
  for (const r of routes) {
    const m = r.re.exec(pathname);
    if (!m) continue;
    const params = { ...(r.extra || {}) };
    (r.params || []).forEach((name, i) => { if (m[i + 1] !== undefined) params[name] = decodeURIComponent(m[i + 1]); });
    return { route: r, params };
  }
  return null;
}

// render shows the page for the current URL, ending the previous page's
// streams and timers first.
function render() {
  if (cleanup) {
    try { cleanup(); } catch (e) { console.error(e); }
    cleanup = null;
  }
  const m = match(location.pathname);
  const bare = !!(m && m.route.bare);
  // Keep the scope in the address bar so the URL can be shared as is.
  const want = withScope(location.pathname + location.search + location.hash);
  if (!bare && want !== location.pathname + location.search + location.hash) history.replaceState(null, '', want);
  document.body.classList.toggle('bare', bare);
  updateChrome();
  clear(main);
  if (!m) {
    document.title = 'Not found · OpenIntern';
    main.append(h('section', { class: 'page' },
      errorBox({ status: 404, code: 'not_found', message: `There is no page at ${location.pathname}.` }),
      h('p', null, h('a', { href: withScope('/'), 'data-link': true }, 'Go to Chat'))));
    return;
  }
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', a.dataset.nav === m.route.nav);
    if (a.dataset.nav === m.route.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const ctx = { params: m.params, query: new URLSearchParams(location.search), navigate, setQuery };
  try {
    cleanup = m.route.page.render(main, ctx) || null;
  } catch (err) {
    console.error(err);
    main.append(errorBox(err));
  }
}

// navigate goes to an in-app path, keeping the scope.
export function navigate(path, { replace = false } = {}) {
  const url = withScope(path);
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

// setQuery changes the page's own query parameters without re-rendering.
function setQuery(values) {
  const u = new URL(location.href);
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || v === null || v === '') u.searchParams.delete(k);
    else u.searchParams.set(k, String(v));
  }
  history.replaceState(null, '', u.pathname + u.search + u.hash);
}

function updateChrome() {
  document.getElementById('scope-text').textContent = scopeText();
  for (const a of document.querySelectorAll('a[data-nav], a.brand')) {
    a.href = withScope(new URL(a.href).pathname);
  }
  const session = getSession();
  const who = document.getElementById('who');
  who.hidden = !session;
  document.getElementById('who-text').textContent = session ? `${session.token_name} · ${session.role}` : '';
  document.getElementById('who-text').title = session ? `Signed in with the token ${session.token_name} (${session.token_id}), role ${session.role}` : '';
  document.body.dataset.role = session ? session.role : '';
  document.getElementById('scope-button').title = session ? 'The scope your token allows' : 'Change scope';
}

function setupScopePanel() {
  const button = document.getElementById('scope-button');
  const panel = document.getElementById('scope-panel');
  const open = (show) => {
    panel.hidden = !show;
    button.setAttribute('aria-expanded', String(show));
    if (show) {
      const s = getScope();
      const session = getSession();
      // Signed in, only what the token leaves open can be changed: the
      // project of a token bound to none.
      const fixed = { org_id: !!session, user_id: !!session, project_id: !!(session && session.project_bound) };
      for (const f of ['org_id', 'user_id', 'project_id']) {
        panel.elements[f].value = s[f] || '';
        panel.elements[f].readOnly = fixed[f];
      }
      document.getElementById('scope-hint').hidden = !!session;
      const tokenHint = document.getElementById('scope-token-hint');
      tokenHint.hidden = !session;
      if (session) {
        tokenHint.textContent = session.project_bound
          ? `Your token (${session.token_name}) is bound to this org, user and project.`
          : `Your token (${session.token_name}) is bound to this org and user; choose a project or leave it empty.`;
      }
      panel.querySelector('button[type=submit]').hidden = fixed.project_id;
      const first = ['org_id', 'user_id', 'project_id'].find((f) => !fixed[f]);
      (first ? panel.elements[first] : document.getElementById('scope-cancel')).focus();
    }
  };
  button.addEventListener('click', () => open(panel.hidden));
  document.getElementById('scope-cancel').addEventListener('click', () => open(false));
  panel.addEventListener('submit', (e) => {
    e.preventDefault();
    setScope({
      org_id: panel.elements.org_id.value, user_id: panel.elements.user_id.value,
      project_id: panel.elements.project_id.value,
    });
    open(false);
    // Page-specific choices (agent, session, filters) belong to the old scope.
    navigate(location.pathname, { replace: false });
  });
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape' && !panel.hidden) open(false); });
  document.getElementById('signout').addEventListener('click', () => {
    if (cleanup) {
      try { cleanup(); } catch (e) { console.error(e); }
      cleanup = null;
    }
    signOut();
  });
}

// Same-origin links with data-link are handled here, not by a page load.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin) return;
  e.preventDefault();
  navigate(u.pathname + u.search + u.hash);
});
window.addEventListener('popstate', () => {
  initScope();
  render();
});

// Before any page asks the API, find out whether it must sign in first (the
// sign-in page itself only wants to know who is signed in, if anyone).
async function start() {
  setupScopePanel();
  const bare = !!match(location.pathname)?.route.bare;
  if (!await initSession({ redirect: !bare })) return; // on the way to sign in
  initScope();
  render();
}

start();
