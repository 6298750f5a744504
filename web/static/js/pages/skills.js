// Skills: the skills the scope sees (uploaded ones and the daemon's skills
// folder's), one in full (its SKILL.md instructions, files and the tools it
// names), uploading a zip or tar of a skill folder, and deleting an
// uploaded one after a confirmation. The open skill lives in the URL.
import { api, upload, mayDo } from '../api.js';
import { h, clear, errorBox, spinner, timeEl, toast } from '../dom.js';

const ARCHIVE = /\.(zip|tar|tgz|tar\.gz)$/i;

export function render(root, { query, setQuery }) {
  document.title = 'Skills · OpenIntern';
  const state = { alive: true, seq: 0, open: query.get('skill') || '' };

  const list = h('div', { class: 'list skill-list', id: 'skill-list' });
  const detail = h('div', { class: 'card skill-detail', id: 'skill-detail', hidden: true });

  // ---- upload
  const file = h('input', { type: 'file', name: 'file', id: 'skills-file', accept: '.zip,.tar,.tgz,.gz,application/zip,application/x-tar,application/gzip', class: 'file-input' });
  const chosen = h('span', { class: 'muted skills-file-name' }, 'No file chosen.');
  const replace = h('input', { type: 'checkbox', id: 'skills-replace', name: 'replace' });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'skills-upload', disabled: true }, 'Upload skill');
  const result = h('div', { class: 'skills-upload-result', id: 'skills-upload-result', 'aria-live': 'polite' });
  const form = h('form', { class: 'card stack', id: 'skills-upload-form', hidden: !mayDo('member') },
    h('h2', null, 'Upload a skill'),
    h('p', { class: 'hint' }, 'A .zip, .tar or .tar.gz of a folder with a SKILL.md (front matter name and description, then instructions) and the files it needs.'),
    h('div', { class: 'drop-zone' }, file, h('label', { class: 'button-like', for: 'skills-file' }, 'Choose file…'), chosen),
    h('div', { class: 'row-actions' },
      h('label', { class: 'field-inline' }, replace, h('span', null, 'Replace a skill of the same name')),
      h('span', { class: 'spacer' }), submit),
    result);
  let picked = null;
  file.addEventListener('change', () => {
    picked = file.files[0] || null;
    result.replaceChildren();
    chosen.textContent = picked ? `${picked.name} · ${picked.size} bytes` : 'No file chosen.';
    submit.disabled = !picked;
    if (picked && !ARCHIVE.test(picked.name)) {
      result.replaceChildren(errorBox({ status: 400, code: 'invalid_skill', message: `${picked.name} is not a .zip, .tar or .tar.gz file.` }));
      submit.disabled = true;
    }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!picked) return;
    const fd = new FormData();
    fd.append('file', picked, picked.name);
    submit.disabled = true;
    result.replaceChildren(h('span', { class: 'muted' }, `Uploading ${picked.name}…`));
    try {
      const sk = await upload('/api/skills' + (replace.checked ? '?replace=true' : ''), fd);
      result.replaceChildren(h('p', { class: 'ok-note' }, `Added skill ${sk.name} (${sk.files_count} files).`));
      toast(`Uploaded skill ${sk.name}`);
      form.reset();
      picked = null;
      chosen.textContent = 'No file chosen.';
      await load();
      openSkill(sk.name);
    } catch (err) {
      result.replaceChildren(errorBox(err));
      submit.disabled = false;
    }
  });

  root.append(h('section', { class: 'page page-skills' },
    h('header', { class: 'page-head' }, h('h1', null, 'Skills')),
    h('p', { class: 'muted' }, 'Grant skills to agents or roles: their prompt lists each skill\'s name and description, and the agent loads the instructions with the use_skill tool when it needs them.'),
    form,
    h('div', { class: 'split' }, list, detail)));

  async function load() {
    const seq = ++state.seq;
    clear(list).append(spinner('Loading skills…'));
    try {
      const res = await api('GET', '/api/skills');
      if (!state.alive || seq !== state.seq) return;
      clear(list);
      if (!res.skills.length) {
        list.append(h('p', { class: 'empty', id: 'skills-empty' }, 'No skills yet. Upload a zip or tar of a skill folder above.'));
        return;
      }
      for (const sk of res.skills) {
        const row = h('button', { type: 'button', class: 'list-row skill-row', 'data-skill': sk.name },
          h('strong', { class: 'skill-name' }, sk.name),
          h('span', { class: `badge skill-source source-${sk.source}` }, sk.source === 'config' ? 'skills folder' : 'uploaded'),
          h('span', { class: 'muted' }, ` ${sk.files_count} files · ${sk.size} bytes`),
          h('div', { class: 'skill-desc' }, sk.description));
        row.addEventListener('click', () => openSkill(sk.name));
        list.append(row);
      }
    } catch (err) {
      if (state.alive) clear(list).append(errorBox(err, load));
    }
  }

  async function openSkill(name) {
    state.open = name;
    setQuery({ skill: name });
    detail.hidden = false;
    clear(detail).append(spinner(`Loading ${name}…`));
    try {
      const sk = await api('GET', `/api/skills/${encodeURIComponent(name)}`);
      if (!state.alive || state.open !== name) return;
      showSkill(sk);
    } catch (err) {
      if (state.alive) clear(detail).append(errorBox(err));
    }
  }

  function showSkill(sk) {
    const tools = (sk.allowed_tools || []).map((t) => h('code', { class: (sk.unknown_tools || []).includes(t) ? 'unknown-tool' : '' }, t));
    const del = h('button', { type: 'button', class: 'danger', id: 'skill-delete', hidden: sk.source !== 'uploaded' || !mayDo('member') }, 'Delete');
    const confirm = h('div', { class: 'confirm', id: 'skill-confirm', hidden: true },
      h('span', null, `Delete the skill ${sk.name}? Agents granted it will no longer see it.`),
      h('button', { type: 'button', class: 'danger', id: 'skill-delete-confirm' }, 'Delete'),
      h('button', { type: 'button', id: 'skill-delete-cancel' }, 'Cancel'));
    del.addEventListener('click', () => { confirm.hidden = false; del.hidden = true; });
    confirm.querySelector('#skill-delete-cancel').addEventListener('click', () => { confirm.hidden = true; del.hidden = false; });
    confirm.querySelector('#skill-delete-confirm').addEventListener('click', async () => {
      try {
        await api('DELETE', `/api/skills/${encodeURIComponent(sk.name)}`);
        toast(`Deleted skill ${sk.name}`);
        state.open = '';
        setQuery({ skill: null });
        detail.hidden = true;
        await load();
      } catch (err) {
        confirm.replaceChildren(errorBox(err));
      }
    });
    clear(detail).append(
      h('header', { class: 'row-actions' }, h('h2', { id: 'skill-detail-name' }, sk.name), h('span', { class: 'spacer' }), del),
      confirm,
      h('p', { id: 'skill-detail-desc' }, sk.description),
      h('dl', { class: 'kv' },
        h('dt', null, 'Source'), h('dd', null, sk.source === 'config' ? 'the daemon\'s skills folder (read-only)' : 'uploaded'),
        h('dt', null, 'Size'), h('dd', null, `${sk.size} bytes`),
        h('dt', null, 'Updated'), h('dd', null, timeEl(sk.updated_at)),
        h('dt', null, 'Tools'), h('dd', null, tools.length ? tools : 'none named')),
      (sk.unknown_tools || []).length
        ? h('p', { class: 'warn', id: 'skill-unknown-tools' }, `This daemon has no tool named ${sk.unknown_tools.join(', ')}; the skill may expect tools it cannot call.`)
        : null,
      h('h3', null, 'Files'),
      sk.files.length
        ? h('ul', { class: 'skill-files', id: 'skill-files' }, sk.files.map((f) => h('li', null, h('code', null, f.path), ` ${f.size} bytes`)))
        : h('p', { class: 'muted' }, 'Only SKILL.md.'),
      h('h3', null, 'Instructions (SKILL.md)'),
      h('pre', { class: 'skill-body', id: 'skill-body' }, sk.body || ''));
  }

  load().then(() => { if (state.open) openSkill(state.open); });
  return () => { state.alive = false; };
}
