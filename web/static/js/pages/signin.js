// Sign in: an API token starts a web session (an HttpOnly cookie the page
// never sees), then the console goes where it was going. The token itself is
// not kept by the page.
import { h } from '../dom.js';
import { getSession, safeNext } from '../api.js';

export function render(root, { query }) {
  document.title = 'Sign in · OpenIntern';
  const next = safeNext(query.get('next'));
  const input = h('input', {
    type: 'password', name: 'token', id: 'signin-token', required: true, autocomplete: 'current-password',
    spellcheck: 'false', placeholder: 'oit_…', maxlength: '512',
  });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'signin-submit' }, 'Sign in');
  const message = h('div', { id: 'signin-message', 'aria-live': 'polite' });
  const form = h('form', { class: 'card signin-card', id: 'signin-form' },
    h('label', { for: 'signin-token' }, 'API token'),
    input,
    h('p', { class: 'hint' }, 'An admin makes one with ', h('code', null, 'openintern tokens create'),
      '. The token decides which org, user and project you see and what you may change.'),
    message,
    h('div', { class: 'row-actions' }, submit));
  const note = h('div', { id: 'signin-note' });
  root.append(h('section', { class: 'page page-signin' },
    h('header', { class: 'page-head' }, h('h1', null, 'Sign in')), note, form));

  const session = getSession();
  if (session) {
    note.append(h('p', { class: 'muted', id: 'signin-current' }, `Signed in as ${session.token_name} (${session.role}). `,
      h('a', { href: next }, 'Continue'), ' or sign in with another token.'));
  }
  authOff().then((off) => {
    if (off) {
      note.append(h('p', { class: 'hint', id: 'signin-auth-off' }, 'This daemon does not ask for sign-in (auth is off): ',
        h('a', { href: next }, 'open the console'), '.'));
    }
  });

  let busy = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (busy) return;
    const token = input.value.trim();
    if (!token) return;
    busy = true;
    submit.disabled = true;
    message.replaceChildren();
    try {
      const resp = await fetch('/api/auth/login', {
        method: 'POST', headers: { accept: 'application/json', 'content-type': 'application/json' },
        body: JSON.stringify({ token }), cache: 'no-store',
      });
      if (resp.ok) {
        input.value = '';
        location.assign(next);
        return;
      }
      let data = null;
      try { data = await resp.json(); } catch { data = null; }
      const err = data && data.error;
      showError(resp.status === 401 ? 'Not signed in' : 'Sign-in failed',
        (err && err.message) || `The daemon answered HTTP ${resp.status}.`, err && err.code);
    } catch (err) {
      showError('The daemon is not answering', `Cannot reach the OpenIntern daemon (${err.message}).`, 'unreachable');
    }
    busy = false;
    submit.disabled = false;
    input.focus();
    input.select();
  });

  function showError(title, text, code) {
    message.replaceChildren(h('div', { class: 'error-box', role: 'alert' },
      h('strong', { class: 'error-title' }, title),
      h('p', { class: 'error-message' }, text),
      code ? h('p', { class: 'error-code muted' }, code) : null));
  }

  input.focus();
}

// authOff asks whether the daemon answers without a credential.
async function authOff() {
  try {
    const resp = await fetch('/api/auth/whoami', {
      headers: { accept: 'application/json', 'x-org-id': 'org_default', 'x-user-id': 'user_default' }, cache: 'no-store',
    });
    if (!resp.ok) return false;
    const data = await resp.json();
    return data.via === 'none';
  } catch {
    return false;
  }
}
