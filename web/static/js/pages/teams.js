// Teams: roles (prompt, model, allowed tools, lead flag), groups and their
// members, and group runs: start one and watch it live as a conversation
// between the roles — tasks, proposals, the lead's decision. The open group
// and the watched run live in the URL (?group=…&run=…) so a link shows the
// same view.
import { api, link, fetchAllEvents } from '../api.js';
import { h, clear, errorBox, badge, timeEl, pager, spinner, toast, truncate, runDuration, duration, shortId } from '../dom.js';
import { Roster, messageItem, progressOf, progressEl, liveStream, liveText, avatar, finished } from '../team.js';

const GROUP_LIMIT = 20;
const ROLE_LIMIT = 20;
const RUN_LIMIT = 10;
const POLL_MS = 3000;
const NEW_AGENT = '__new__';
const ID_PATTERN = '[a-z0-9][a-z0-9_\\-]*';
const TOOL_HINT = 'read_file, blackboard_read, blackboard_write, send_message';

let formSeq = 0;

export function render(root, { query, setQuery }) {
  document.title = 'Teams · OpenIntern';
  const state = {
    alive: true,
    groupId: query.get('group') || '',
    runId: query.get('run') || '',
    groupsPage: 1,
    rolesPage: 1,
    runsPage: 1,
    seq: { groups: 0, roles: 0, group: 0, runs: 0, stats: 0, watch: 0 },
    group: null,
    watch: null,
    runsTimer: null,
  };
  const alive = () => state.alive;

  // ---- groups column
  const groupList = h('div', { class: 'list team-list', id: 'group-list' });
  const groupPager = h('div', { class: 'pager-box' });
  const groupCreate = h('div', { class: 'create-box', hidden: true });
  const groupNewBtn = h('button', { type: 'button', class: 'primary', id: 'group-new', 'aria-expanded': 'false' }, 'New group');
  groupNewBtn.addEventListener('click', () => toggleBox(groupCreate, groupNewBtn));
  groupCreate.append(groupForm((g) => {
    toggleBox(groupCreate, groupNewBtn, false);
    state.groupsPage = 1;
    loadGroups();
    openGroup(g.group_id);
  }));

  // ---- roles column
  const roleList = h('div', { class: 'list team-list', id: 'role-list' });
  const rolePager = h('div', { class: 'pager-box' });
  const roleCreate = h('div', { class: 'create-box', hidden: true });
  const roleNewBtn = h('button', { type: 'button', id: 'role-new', 'aria-expanded': 'false' }, 'New role');
  roleNewBtn.addEventListener('click', () => toggleBox(roleCreate, roleNewBtn));
  roleCreate.append(roleForm(null, {
    onSaved: () => { toggleBox(roleCreate, roleNewBtn, false); loadRoles(); },
  }));

  // ---- detail column
  const detail = h('section', { class: 'team-detail', id: 'group-detail', 'aria-label': 'Group' });

  root.append(h('section', { class: 'page page-teams' },
    h('header', { class: 'page-head' },
      h('h1', null, 'Teams'),
      h('span', { class: 'muted live-note' }, 'roles, groups and group runs · 角色、小组与协作运行')),
    h('div', { class: 'teams-layout' },
      h('div', { class: 'card teams-groups' },
        h('div', { class: 'card-head' }, h('h2', null, 'Groups'), h('span', { class: 'spacer' }), groupNewBtn),
        groupCreate, groupList, groupPager),
      detail,
      h('div', { class: 'card teams-roles' },
        h('div', { class: 'card-head' }, h('h2', null, 'Roles'), h('span', { class: 'spacer' }), roleNewBtn),
        roleCreate, roleList, rolePager))));

  // ---- groups list

  async function loadGroups() {
    const seq = ++state.seq.groups;
    if (!groupList.firstChild) groupList.append(spinner('Loading groups…'));
    try {
      const res = await api('GET', `/api/groups?page=${state.groupsPage}&limit=${GROUP_LIMIT}`);
      if (!alive() || seq !== state.seq.groups) return;
      if (res.groups.length === 0 && state.groupsPage > 1 && res.total > 0) {
        state.groupsPage = Math.ceil(res.total / GROUP_LIMIT);
        loadGroups();
        return;
      }
      clear(groupList);
      if (res.groups.length === 0) {
        groupList.append(h('p', { class: 'empty', id: 'groups-empty' }, 'No groups in this scope yet. 还没有小组。'));
      }
      for (const g of res.groups) {
        groupList.append(h('button', {
          type: 'button', class: 'row team-row group-row', dataset: { groupId: g.group_id },
          onclick: () => openGroup(g.group_id),
        },
        h('span', { class: 'row-title' }, h('span', { class: 'team-name' }, g.name), h('code', { class: 'muted' }, g.group_id)),
        h('span', { class: 'row-facts' },
          h('span', null, `${g.members} member${g.members === 1 ? '' : 's'}`),
          g.description ? h('span', { class: 'muted team-desc' }, truncate(g.description, 80)) : null)));
      }
      markGroup();
      groupPager.replaceChildren(res.total > GROUP_LIMIT ? pager({
        page: state.groupsPage, limit: GROUP_LIMIT, total: res.total, noun: 'groups',
        onPage: (p) => { state.groupsPage = p; loadGroups(); },
      }) : '');
    } catch (err) {
      if (!alive() || seq !== state.seq.groups) return;
      clear(groupList).append(errorBox(err, loadGroups));
    }
  }

  function markGroup() {
    for (const el of groupList.querySelectorAll('.group-row')) {
      const on = el.dataset.groupId === state.groupId;
      el.classList.toggle('selected', on);
      if (on) el.setAttribute('aria-current', 'true'); else el.removeAttribute('aria-current');
    }
  }

  // ---- roles list

  async function loadRoles() {
    const seq = ++state.seq.roles;
    if (!roleList.firstChild) roleList.append(spinner('Loading roles…'));
    try {
      const res = await api('GET', `/api/roles?page=${state.rolesPage}&limit=${ROLE_LIMIT}`);
      if (!alive() || seq !== state.seq.roles) return;
      if (res.roles.length === 0 && state.rolesPage > 1 && res.total > 0) {
        state.rolesPage = Math.ceil(res.total / ROLE_LIMIT);
        loadRoles();
        return;
      }
      clear(roleList);
      if (res.roles.length === 0) {
        roleList.append(h('p', { class: 'empty', id: 'roles-empty' },
          'No roles yet. A role is a job in a team: its prompt, model and tools. One role per group is the lead, who decides. 还没有角色。'));
      }
      for (const r of res.roles) roleList.append(roleRow(r));
      rolePager.replaceChildren(res.total > ROLE_LIMIT ? pager({
        page: state.rolesPage, limit: ROLE_LIMIT, total: res.total, noun: 'roles',
        onPage: (p) => { state.rolesPage = p; loadRoles(); },
      }) : '');
    } catch (err) {
      if (!alive() || seq !== state.seq.roles) return;
      clear(roleList).append(errorBox(err, loadRoles));
    }
  }

  function roleRow(r) {
    const editBox = h('div', { class: 'role-edit-box', hidden: true });
    const statsBox = h('div', { class: 'role-stats-box', hidden: true });
    const confirmBox = h('div', { class: 'confirm-box role-confirm', hidden: true, role: 'alertdialog', 'aria-label': 'Confirm delete' });
    const editBtn = h('button', { type: 'button', class: 'role-edit', 'aria-expanded': 'false' }, 'Edit');
    const statsBtn = h('button', { type: 'button', class: 'role-stats', 'aria-expanded': 'false' }, 'Stats');
    const delBtn = h('button', { type: 'button', class: 'danger role-delete' }, 'Delete…');
    const el = h('div', { class: 'row role-row', dataset: { roleId: r.role_id, lead: String(!!r.is_lead) } },
      h('div', { class: 'row-title' },
        h('span', { class: 'team-name' }, r.name),
        r.is_lead ? h('span', { class: 'badge badge-lead', title: 'the lead role decides for its group' }, '★ lead') : null,
        h('code', { class: 'muted' }, r.role_id)),
      h('div', { class: 'row-facts' },
        h('span', { class: 'role-tools', title: 'allowed tools' }, toolsText(r.allowed_tools)),
        r.model ? h('span', { class: 'muted' }, `model ${r.model}`) : null),
      r.description ? h('p', { class: 'role-desc muted' }, truncate(r.description, 160)) : null,
      h('div', { class: 'row-actions' }, editBtn, statsBtn, delBtn),
      statsBox, editBox, confirmBox);

    editBtn.addEventListener('click', () => {
      const show = editBox.hidden;
      editBox.hidden = !show;
      editBtn.setAttribute('aria-expanded', String(show));
      if (show) {
        editBox.replaceChildren(roleForm(r, {
          onSaved: () => { loadRoles(); if (state.group) reloadGroup(); },
          onCancel: () => { editBox.hidden = true; editBtn.setAttribute('aria-expanded', 'false'); },
        }));
        editBox.querySelector('input[name=name]').focus();
      }
    });

    statsBtn.addEventListener('click', async () => {
      const show = statsBox.hidden;
      statsBox.hidden = !show;
      statsBtn.setAttribute('aria-expanded', String(show));
      if (!show) return;
      statsBox.replaceChildren(spinner('Loading stats…'));
      try {
        const res = await api('GET', `/api/roles/${encodeURIComponent(r.role_id)}/stats`);
        if (!alive()) return;
        statsBox.replaceChildren(statTiles(res.stats, 'member runs in this role'));
      } catch (err) {
        statsBox.replaceChildren(errorBox(err));
      }
    });

    delBtn.addEventListener('click', () => {
      delBtn.hidden = true;
      confirmBox.hidden = false;
      askDelete(false);
    });

    // askDelete asks first without cascade; a role in use asks again.
    function askDelete(cascade) {
      const err = h('div', { class: 'form-error' });
      const yes = h('button', { type: 'button', class: `danger solid ${cascade ? 'role-delete-cascade' : 'role-delete-confirm'}` },
        cascade ? 'Delete and remove from groups' : 'Delete role');
      const no = h('button', { type: 'button', class: 'role-delete-cancel' }, 'Cancel');
      no.addEventListener('click', () => { confirmBox.hidden = true; delBtn.hidden = false; confirmBox.replaceChildren(); });
      yes.addEventListener('click', async () => {
        yes.disabled = true;
        no.disabled = true;
        err.replaceChildren();
        try {
          await api('DELETE', `/api/roles/${encodeURIComponent(r.role_id)}${cascade ? '?cascade=true' : ''}`);
          if (!alive()) return;
          toast(`Deleted role ${r.name}`);
          loadRoles();
          if (state.group) reloadGroup();
        } catch (e2) {
          if (!alive()) return;
          if (e2.code === 'in_use' && !cascade) {
            askDelete(true);
            return;
          }
          err.replaceChildren(errorBox(e2));
          yes.disabled = false;
          no.disabled = false;
        }
      });
      confirmBox.replaceChildren(
        cascade
          ? h('p', { class: 'role-in-use' }, h('strong', null, `“${r.name}” is in use.`),
            ' Members of a group hold this role. Deleting it also removes those members from their groups (the agents stay). 该角色正在使用中，删除会把相应成员移出小组。')
          : h('p', null, h('strong', null, `Delete the role “${r.name}”?`), ' This cannot be undone.'),
        h('div', { class: 'row-actions' }, yes, no), err);
      (cascade ? yes : no).focus();
    }
    return el;
  }

  // ---- one group

  function openGroup(id) {
    if (state.groupId !== id) {
      state.runId = '';
      state.runsPage = 1;
    }
    state.groupId = id;
    setQuery({ group: id, run: state.runId });
    markGroup();
    loadGroup();
    if (window.matchMedia('(max-width: 760px)').matches) detail.scrollIntoView({ block: 'start' });
  }

  function intro() {
    stopWatch();
    clearTimeout(state.runsTimer);
    delete detail.dataset.groupId;
    clear(detail).append(h('div', { class: 'card team-intro', id: 'team-intro' },
      h('h2', null, 'How a team works · 团队如何协作'),
      h('ol', { class: 'plain steps-list' },
        h('li', null, h('strong', null, 'Roles'), ' — create a few, e.g. researcher, critic and a ', h('em', null, 'lead'), ' (★), who decides.'),
        h('li', null, h('strong', null, 'Group'), ' — create one and add agents as members, each with a role; exactly one holds the lead role.'),
        h('li', null, h('strong', null, 'Run'), ' — give the group a task. Members work on it (one after another, or in parallel), post proposals on the blackboard, and the lead decides.')),
      h('p', { class: 'muted' }, 'Pick a group to open it. 选择一个小组开始。')));
  }

  async function loadGroup() {
    const id = state.groupId;
    if (!id) { intro(); return; }
    stopWatch();
    clearTimeout(state.runsTimer);
    const seq = ++state.seq.group;
    state.group = null;
    detail.dataset.groupId = id;
    clear(detail).append(h('div', { class: 'card' }, spinner('Loading the group…')));
    let g;
    try {
      g = await api('GET', `/api/groups/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!alive() || seq !== state.seq.group) return;
      clear(detail).append(h('div', { class: 'card' },
        h('h2', null, 'Group ', h('code', null, id)),
        errorBox(err, loadGroup)));
      return;
    }
    if (!alive() || seq !== state.seq.group) return;
    state.group = g;
    showGroup(g);
  }

  // reloadGroup refreshes the members after a change (roles, members).
  async function reloadGroup() {
    const id = state.groupId;
    if (!id) return;
    try {
      const g = await api('GET', `/api/groups/${encodeURIComponent(id)}`);
      if (!alive() || id !== state.groupId) return;
      state.group = g;
      renderHead(g);
      renderMembers(g);
    } catch (err) {
      if (!alive() || id !== state.groupId) return;
      if (err.status === 404) { loadGroup(); return; }
      membersError.replaceChildren(errorBox(err));
    }
  }

  // The detail's parts, filled by showGroup.
  const head = h('div', { class: 'card group-head' });
  const statsBox = h('div', { class: 'group-stats', id: 'group-stats' });
  const membersBox = h('div', { class: 'list member-list', id: 'member-list' });
  const membersNote = h('div', { class: 'members-note' });
  const membersError = h('div', { class: 'form-error', id: 'members-error' });
  const addBox = h('div', { class: 'member-add-box' });
  const runForm = h('form', { class: 'team-run-form stack', id: 'team-run' });
  const runPanel = h('div', { class: 'team-run-panel', id: 'team-run-panel', hidden: true });
  const runsList = h('div', { class: 'list group-runs', id: 'group-runs' });
  const runsPager = h('div', { class: 'pager-box' });

  function showGroup(g) {
    // The parts are reused from group to group: nothing of the last one stays.
    clear(statsBox);
    clear(runsList);
    runsPager.replaceChildren();
    clear(runPanel);
    runPanel.hidden = true;
    clear(detail).append(
      head,
      h('div', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', null, 'Members · 成员'), h('span', { class: 'spacer' }), h('span', { class: 'muted member-count' })),
        membersNote, membersBox, membersError, addBox),
      h('div', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', null, 'Give the team a task · 发起协作')),
        runForm, runPanel),
      h('div', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', null, 'Stats and recent runs · 统计')),
        statsBox,
        runsList, runsPager));
    renderHead(g);
    renderMembers(g);
    renderRunForm();
    loadStats();
    loadRuns();
    if (state.runId) watchRun(state.runId);
  }

  function renderHead(g) {
    const editBox = h('div', { hidden: true });
    const confirmBox = h('div', { class: 'confirm-box', hidden: true, role: 'alertdialog', 'aria-label': 'Confirm delete' });
    const editBtn = h('button', { type: 'button', id: 'group-edit' }, 'Edit');
    const delBtn = h('button', { type: 'button', class: 'danger', id: 'group-delete' }, 'Delete…');
    const bbLink = link(`/blackboard/${g.group_id}`, 'Blackboard →');
    bbLink.id = 'group-blackboard-link';
    editBtn.addEventListener('click', () => {
      editBox.hidden = !editBox.hidden;
      if (!editBox.hidden) {
        editBox.replaceChildren(groupEditForm(g, (updated) => {
          state.group = { ...state.group, name: updated.name, description: updated.description };
          renderHead(state.group);
          loadGroups();
        }, () => { editBox.hidden = true; }));
        editBox.querySelector('input').focus();
      }
    });
    delBtn.addEventListener('click', () => {
      delBtn.hidden = true;
      confirmBox.hidden = false;
      const err = h('div', { class: 'form-error' });
      const yes = h('button', { type: 'button', class: 'danger solid', id: 'group-delete-confirm' }, 'Delete group');
      const no = h('button', { type: 'button', id: 'group-delete-cancel' }, 'Cancel');
      no.addEventListener('click', () => { confirmBox.hidden = true; delBtn.hidden = false; });
      yes.addEventListener('click', async () => {
        yes.disabled = true;
        try {
          await api('DELETE', `/api/groups/${encodeURIComponent(g.group_id)}`);
          if (!alive()) return;
          toast(`Deleted group ${g.name}`);
          state.groupId = '';
          state.runId = '';
          setQuery({ group: '', run: '' });
          intro();
          loadGroups();
        } catch (e2) {
          err.replaceChildren(errorBox(e2));
          yes.disabled = false;
        }
      });
      confirmBox.replaceChildren(
        h('p', null, h('strong', null, `Delete the group “${g.name}”?`),
          ' Its memberships go; the agents, roles, runs and blackboard entries stay. 删除小组不会删除成员智能体。'),
        h('div', { class: 'row-actions' }, yes, no), err);
      no.focus();
    });
    head.replaceChildren(
      h('div', { class: 'card-head' },
        h('h2', { class: 'group-title', id: 'group-title' }, g.name),
        h('code', { class: 'muted' }, g.group_id),
        h('span', { class: 'spacer' }),
        bbLink, editBtn, delBtn),
      g.description ? h('p', { class: 'group-desc' }, g.description) : '',
      editBox, confirmBox);
  }

  // ---- members

  function renderMembers(g) {
    const members = g.members || [];
    const countEl = detail.querySelector('.member-count');
    if (countEl) countEl.textContent = `${members.length} member${members.length === 1 ? '' : 's'}`;
    clear(membersBox);
    membersError.replaceChildren();
    if (members.length === 0) {
      membersBox.append(h('p', { class: 'empty', id: 'members-empty' }, 'No members yet. Add agents below, each with a role.'));
    }
    const data = pickerData();
    for (const m of members) {
      const roleSel = h('select', { class: 'member-role', 'aria-label': `Role of ${m.agent_id}` },
        h('option', { value: m.role_id, selected: true }, m.role_name || m.role_id));
      data.then(({ roles }) => {
        if (!roles) return;
        roleSel.replaceChildren(...roles.map((r) => h('option', { value: r.role_id, selected: r.role_id === m.role_id }, roleLabel(r))));
        if (!roles.some((r) => r.role_id === m.role_id)) roleSel.prepend(h('option', { value: m.role_id, selected: true }, m.role_name || m.role_id));
      });
      roleSel.addEventListener('change', async () => {
        membersError.replaceChildren();
        roleSel.disabled = true;
        try {
          await api('PUT', `/api/groups/${encodeURIComponent(g.group_id)}/members/${encodeURIComponent(m.agent_id)}`, { role_id: roleSel.value });
          if (!alive()) return;
          toast(`${m.agent_id} is now ${roleSel.selectedOptions[0].textContent}`);
          reloadGroup();
        } catch (err) {
          if (!alive()) return;
          roleSel.value = m.role_id;
          roleSel.disabled = false;
          membersError.replaceChildren(errorBox(err));
        }
      });
      const remove = h('button', { type: 'button', class: 'member-remove', title: `Remove ${m.agent_id} from the group` }, 'Remove');
      remove.addEventListener('click', async () => {
        membersError.replaceChildren();
        remove.disabled = true;
        try {
          await api('DELETE', `/api/groups/${encodeURIComponent(g.group_id)}/members/${encodeURIComponent(m.agent_id)}`);
          if (!alive()) return;
          toast(`Removed ${m.agent_id} from the group`);
          reloadGroup();
          loadGroups();
        } catch (err) {
          if (!alive()) return;
          remove.disabled = false;
          membersError.replaceChildren(errorBox(err));
        }
      });
      const name = h('span', { class: 'member-name' });
      data.then(({ agents }) => {
        const a = (agents || []).find((x) => x.agent_id === m.agent_id);
        if (a && a.name && a.name !== a.agent_id) name.textContent = a.name;
      });
      membersBox.append(h('div', { class: 'row member-row', dataset: { agentId: m.agent_id, roleId: m.role_id, lead: String(!!m.is_lead) } },
        avatar(m.agent_id, m.role_name || m.agent_id),
        h('span', { class: 'member-who' },
          name,
          h('code', { class: 'member-agent' }, m.agent_id),
          m.is_lead ? h('span', { class: 'badge badge-lead', title: 'the lead decides for the group' }, '★ lead') : null),
        h('span', { class: 'member-actions' }, roleSel, remove)));
    }
    const hasLead = members.some((m) => m.is_lead);
    const workers = members.filter((m) => !m.is_lead).length;
    membersNote.replaceChildren(
      !hasLead && members.length ? h('p', { class: 'agent-note', id: 'no-lead-note' }, 'No lead yet: give one member a lead role (★) before starting a run. 需要一位组长。') : '',
      hasLead && !workers ? h('p', { class: 'agent-note' }, 'Only the lead so far: add at least one member with a non-lead role.') : '');
    addBox.replaceChildren(memberAddForm(g, data));
  }

  function memberAddForm(g, data) {
    const agentSel = h('select', { id: 'member-agent', name: 'agent_id', 'aria-label': 'Agent', required: true }, h('option', { value: '' }, 'Loading agents…'));
    const roleSel = h('select', { id: 'member-role', name: 'role_id', 'aria-label': 'Role', required: true }, h('option', { value: '' }, 'Loading roles…'));
    const newName = h('input', { id: 'member-new-name', name: 'new_name', maxlength: '200', placeholder: 'Name, e.g. Ada 研究员', 'aria-label': 'New agent name' });
    const newId = h('input', { id: 'member-new-id', name: 'new_id', maxlength: '64', pattern: ID_PATTERN, placeholder: 'agent id (from the name)', 'aria-label': 'New agent id' });
    const newBox = h('div', { class: 'row-actions member-new', hidden: true }, h('span', { class: 'muted' }, 'New agent:'), newName, newId);
    const submit = h('button', { type: 'submit', class: 'primary', id: 'member-add-btn' }, 'Add member');
    const err = h('div', { class: 'form-error' });
    const form = h('form', { class: 'member-add stack', id: 'member-add' },
      h('div', { class: 'row-actions' },
        h('label', { class: 'field-inline' }, h('span', null, 'Agent'), agentSel),
        h('label', { class: 'field-inline' }, h('span', null, 'Role'), roleSel),
        submit),
      newBox, err);
    const taken = new Set((g.members || []).map((m) => m.agent_id));
    data.then(({ roles, agents, error }) => {
      if (!alive()) return;
      if (error) {
        err.replaceChildren(errorBox(error));
        return;
      }
      agentSel.replaceChildren(
        h('option', { value: '' }, 'pick an agent…'),
        ...agents.filter((a) => !taken.has(a.agent_id)).map((a) => h('option', { value: a.agent_id },
          a.name && a.name !== a.agent_id ? `${a.name} (${a.agent_id})` : a.agent_id)),
        h('option', { value: NEW_AGENT }, '＋ New agent…'));
      roleSel.replaceChildren(
        h('option', { value: '' }, roles.length ? 'pick a role…' : 'no roles yet — create one'),
        ...roles.map((r) => h('option', { value: r.role_id }, roleLabel(r))));
    });
    agentSel.addEventListener('change', () => {
      newBox.hidden = agentSel.value !== NEW_AGENT;
      if (!newBox.hidden) newName.focus();
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.replaceChildren();
      let agentId = agentSel.value;
      if (!agentId || !roleSel.value) {
        err.replaceChildren(errorBox({ status: 400, message: 'Pick an agent and a role. 请选择智能体和角色。' }));
        return;
      }
      submit.disabled = true;
      try {
        if (agentId === NEW_AGENT) {
          const body = { name: newName.value.trim() || newId.value.trim() };
          if (newId.value.trim()) body.agent_id = newId.value.trim();
          if (!body.name) throw { status: 400, message: 'Give the new agent a name.' };
          const a = await api('POST', '/api/agents', body);
          agentId = a.agent_id;
          toast(`Created agent ${a.agent_id}`);
        }
        await api('POST', `/api/groups/${encodeURIComponent(g.group_id)}/members`, { agent_id: agentId, role_id: roleSel.value });
        if (!alive()) return;
        toast(`Added ${agentId} to ${g.name}`);
        reloadGroup();
        loadGroups();
      } catch (e2) {
        if (!alive()) return;
        err.replaceChildren(errorBox(e2));
        submit.disabled = false;
      }
    });
    return form;
  }

  // pickerData fetches the roles and agents for the pickers (the first 200 of
  // each: the API's largest page).
  function pickerData() {
    return Promise.all([api('GET', '/api/roles?limit=200'), api('GET', '/api/agents?limit=200')])
      .then(([r, a]) => ({ roles: r.roles, agents: a.agents }))
      .catch((error) => ({ roles: null, agents: null, error }));
  }

  // ---- runs

  function renderRunForm() {
    const input = h('textarea', {
      id: 'team-run-input', name: 'input', rows: '3', required: true, maxlength: '100000',
      placeholder: 'What should the team work on? 例如：下周发布会选哪一天？',
    });
    const mode = h('select', { id: 'team-run-mode', name: 'mode', 'aria-label': 'Mode' },
      h('option', { value: 'serial' }, 'serial — one after another'),
      h('option', { value: 'parallel' }, 'parallel — all at once'));
    const submit = h('button', { type: 'submit', class: 'primary', id: 'team-run-start' }, 'Start run');
    const err = h('div', { class: 'form-error', id: 'team-run-error' });
    runForm.replaceChildren(input,
      h('div', { class: 'row-actions' },
        h('label', { class: 'field-inline' }, h('span', null, 'Mode'), mode),
        h('span', { class: 'hint' }, 'Serial: each member sees the work before it. Parallel: faster, independent proposals.'),
        h('span', { class: 'spacer' }), submit),
      err);
    runForm.onsubmit = async (e) => {
      e.preventDefault();
      err.replaceChildren();
      if (!input.value.trim()) {
        err.replaceChildren(errorBox({ status: 400, message: 'The task is empty. 任务为空。' }));
        return;
      }
      submit.disabled = true;
      const gid = state.groupId;
      try {
        const res = await api('POST', `/api/groups/${encodeURIComponent(gid)}/runs`, { input: input.value, mode: mode.value });
        if (!alive() || gid !== state.groupId) return;
        toast(`Started ${res.mode} run ${res.run_id}`);
        input.value = '';
        state.runsPage = 1;
        watchRun(res.run_id);
        loadRuns();
        loadStats();
      } catch (e2) {
        if (!alive()) return;
        err.replaceChildren(errorBox(e2));
      } finally {
        submit.disabled = false;
      }
    };
  }

  function stopWatch() {
    state.seq.watch++;
    if (state.watch) state.watch.close();
    state.watch = null;
  }

  // watchRun shows one group run as a conversation, live while it goes.
  async function watchRun(runId) {
    stopWatch();
    const seq = state.seq.watch;
    const gid = state.groupId;
    state.runId = runId;
    setQuery({ group: gid, run: runId });
    markRun();
    runPanel.hidden = false;
    runPanel.dataset.runId = runId;
    delete runPanel.dataset.status;
    clear(runPanel).append(spinner('Loading the run…'));
    const current = () => alive() && seq === state.seq.watch;
    let run;
    let events;
    try {
      [run, events] = await Promise.all([
        api('GET', `/api/runs/${encodeURIComponent(runId)}`), fetchAllEvents(runId)]);
    } catch (err) {
      if (!current()) return;
      clear(runPanel).append(errorBox(err, () => watchRun(runId)));
      return;
    }
    if (!current()) return;
    if (run.group_id !== gid || run.agent_id) {
      clear(runPanel).append(errorBox({ status: 404, code: 'not_found', message: `Run ${runId} is not a run of the group ${gid}.` }));
      return;
    }
    const roster = Roster.fromMembers((state.group && state.group.members) || []);
    const statusEl = h('span', { class: 'team-run-status' });
    const liveEl = h('span', { class: 'live-indicator', id: 'team-run-live' });
    const progress = h('div', { class: 'team-progress' });
    const conv = h('ol', { class: 'conv', id: 'team-conv' });
    const all = [];
    const setStatus = (r) => {
      run = r;
      runPanel.dataset.status = r.status;
      statusEl.replaceChildren(badge(r.status), h('span', { class: 'muted' }, ' ', runDuration(r)));
    };
    const setLive = (s) => { liveEl.dataset.state = s; liveEl.textContent = liveText(s); };
    const add = (ev) => {
      all.push(ev);
      const item = messageItem(ev, roster, { groupId: gid });
      if (item) conv.append(item);
      progress.replaceChildren(progressEl(progressOf(all, roster)));
    };
    clear(runPanel).append(
      h('div', { class: 'card-head team-run-head' },
        h('strong', null, 'Run'), h('code', { title: runId }, shortId(runId)), statusEl, liveEl,
        h('span', { class: 'spacer' }),
        link(`/trace/${runId}`, 'Trace →'), link(`/blackboard/${gid}`, 'Blackboard →'),
        h('button', { type: 'button', class: 'link-button', id: 'team-run-close', onclick: () => { stopWatch(); runPanel.hidden = true; state.runId = ''; setQuery({ run: '' }); markRun(); } }, 'Close ✕')),
      progress, conv);
    setStatus(run);
    for (const ev of events) add(ev);
    const lastId = events.length ? events[events.length - 1].id : 0;
    const refresh = async () => {
      try {
        const r = await api('GET', `/api/runs/${encodeURIComponent(runId)}`);
        if (!current()) return;
        setStatus(r);
        if (finished(r.status)) {
          loadRuns({ quiet: true });
          loadStats();
        }
      } catch { /* the conversation still shows what happened */ }
    };
    if (finished(run.status)) {
      setLive('ended');
      return;
    }
    state.watch = liveStream(`/api/runs/${encodeURIComponent(runId)}/stream`, {
      lastId,
      onEvent: (ev) => {
        if (!current()) return;
        add(ev);
        if (ev.type.startsWith('run.') || ev.type === 'message.decision') refresh();
      },
      onEnd: refresh,
      onState: (s) => { if (current()) setLive(s); },
    });
  }

  function markRun() {
    for (const el of runsList.querySelectorAll('.group-run-row')) el.classList.toggle('selected', el.dataset.runId === state.runId);
  }

  async function loadStats() {
    const gid = state.groupId;
    const seq = ++state.seq.stats;
    if (!statsBox.firstChild) statsBox.append(spinner('Loading stats…'));
    try {
      const res = await api('GET', `/api/groups/${encodeURIComponent(gid)}/stats`);
      if (!alive() || seq !== state.seq.stats || gid !== state.groupId) return;
      statsBox.replaceChildren(statTiles(res.stats, 'group runs', [
        ['member runs', String(res.member_runs ? res.member_runs.runs : 0)],
        ['blackboard', res.blackboard_entries === undefined ? '—' : String(res.blackboard_entries), `/blackboard/${gid}`],
      ]));
    } catch (err) {
      if (!alive() || seq !== state.seq.stats) return;
      statsBox.replaceChildren(errorBox(err, loadStats));
    }
  }

  async function loadRuns({ quiet = false } = {}) {
    clearTimeout(state.runsTimer);
    const gid = state.groupId;
    const seq = ++state.seq.runs;
    if (!quiet && !runsList.firstChild) runsList.append(spinner('Loading runs…'));
    try {
      const res = await api('GET', `/api/groups/${encodeURIComponent(gid)}/runs?page=${state.runsPage}&limit=${RUN_LIMIT}`);
      if (!alive() || seq !== state.seq.runs || gid !== state.groupId) return;
      clear(runsList);
      if (res.runs.length === 0) runsList.append(h('p', { class: 'empty', id: 'group-runs-empty' }, 'No runs of this group yet.'));
      for (const r of res.runs) {
        const watch = h('button', { type: 'button', class: 'group-run-watch', onclick: () => watchRun(r.run_id) }, 'Watch');
        runsList.append(h('div', { class: 'row group-run-row', dataset: { runId: r.run_id, status: r.status } },
          badge(r.status),
          h('span', { class: 'group-run-input', title: r.input }, truncate(r.input, 120)),
          h('span', { class: 'muted group-run-when' }, timeEl(r.created_at), r.started_at ? ` · ${runDuration(r)}` : ''),
          h('span', { class: 'row-actions' }, watch, link(`/trace/${r.run_id}`, 'Trace'))));
      }
      markRun();
      runsPager.replaceChildren(res.total > RUN_LIMIT ? pager({
        page: state.runsPage, limit: RUN_LIMIT, total: res.total, noun: 'runs',
        onPage: (p) => { state.runsPage = p; loadRuns(); },
      }) : '');
      if (res.runs.some((r) => !finished(r.status))) {
        state.runsTimer = setTimeout(() => { if (alive()) loadRuns({ quiet: true }); }, POLL_MS);
      }
    } catch (err) {
      if (!alive() || seq !== state.seq.runs) return;
      clear(runsList).append(errorBox(err, () => loadRuns()));
    }
  }

  loadGroups();
  loadRoles();
  if (state.groupId) loadGroup(); else intro();
  return () => {
    state.alive = false;
    stopWatch();
    clearTimeout(state.runsTimer);
  };
}

function toggleBox(box, btn, show = box.hidden) {
  box.hidden = !show;
  btn.setAttribute('aria-expanded', String(show));
  if (show) {
    const first = box.querySelector('input, textarea');
    if (first) first.focus();
  }
}

function roleLabel(r) {
  return r.is_lead ? `${r.name} ★ lead` : r.name;
}

function toolsText(tools) {
  if (tools === null || tools === undefined) return 'tools: as the agent';
  if (tools.length === 0) return 'tools: none';
  return `tools: ${tools.join(', ')}`;
}

function statTiles(s, noun, extra = []) {
  s = s || {};
  const pct = s.runs ? `${Math.round((s.success_rate || 0) * 100)}%` : '—';
  const tiles = [
    [noun, String(s.runs || 0)],
    ['completed', String(s.completed || 0)],
    ['failed', String((s.failed || 0) + (s.cancelled || 0))],
    ['active', String(s.active || 0)],
    ['success', pct],
    ['tokens', String(s.tokens || 0)],
    ['mean time', s.runs ? duration(s.mean_latency_ms) : '—'],
    ...extra,
  ];
  return h('dl', { class: 'stat-tiles' }, tiles.map(([k, v, href]) => h('div', { class: 'stat', dataset: { stat: k } },
    h('dt', null, k), h('dd', null, href ? link(href, v) : v))));
}

function field(label, control, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label' }, label), control, hint ? h('span', { class: 'hint' }, hint) : null);
}

// roleForm creates a role (role null) or edits one; PUT is partial, so the
// form sends every field it shows.
function roleForm(role, { onSaved, onCancel }) {
  const n = ++formSeq;
  const editing = !!role;
  const name = h('input', { name: 'name', required: true, maxlength: '200', value: role ? role.name : '', placeholder: 'Researcher / 研究员' });
  const id = editing ? null : h('input', { name: 'role_id', maxlength: '64', pattern: ID_PATTERN, placeholder: 'from the name' });
  const desc = h('input', { name: 'description', maxlength: '2000', value: role ? role.description : '', placeholder: 'finds facts and sources' });
  const prompt = h('textarea', { name: 'system_prompt', rows: '3', placeholder: 'You are the team’s researcher…' });
  prompt.value = role ? role.system_prompt || '' : '';
  const model = h('input', { name: 'model', maxlength: '200', value: role ? role.model : '', placeholder: 'the agent’s model' });
  // checked as an attribute: the default a reset form returns to.
  const lead = h('input', { type: 'checkbox', name: 'is_lead', checked: role && role.is_lead ? 'checked' : null });
  const mode = role ? (role.allowed_tools === null || role.allowed_tools === undefined ? 'inherit' : role.allowed_tools.length ? 'only' : 'none') : 'inherit';
  const radios = ['inherit', 'none', 'only'].map((v) => h('input', { type: 'radio', name: `tools-mode-${n}`, value: v, checked: v === mode ? 'checked' : null, class: 'tools-mode' }));
  const tools = h('input', {
    name: 'tools', value: role && role.allowed_tools ? role.allowed_tools.join(', ') : '', placeholder: TOOL_HINT,
    disabled: mode !== 'only', 'aria-label': 'Allowed tools',
  });
  for (const r of radios) r.addEventListener('change', () => { tools.disabled = !radios[2].checked; if (!tools.disabled) tools.focus(); });
  const err = h('div', { class: 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, editing ? 'Save role' : 'Create role');
  const cancel = onCancel ? h('button', { type: 'button', onclick: onCancel }, 'Cancel') : null;
  const form = h('form', { class: `card create-form role-form ${editing ? 'role-edit-form' : ''}`, id: editing ? null : 'role-create' },
    editing ? null : h('h2', null, 'New role · 新角色'),
    h('div', { class: 'grid-2' },
      field('Name', name),
      editing ? field('Role id', h('code', { class: 'muted' }, role.role_id)) : field('Role id', id, 'lowercase letters, digits, - and _'),
      field('Description', desc, 'what this role does; members are told'),
      field('Model', model, 'empty: the agent’s model')),
    field('System prompt', prompt),
    h('fieldset', { class: 'tools-field' },
      h('legend', { class: 'field-label' }, 'Allowed tools · 可用工具'),
      h('label', { class: 'field-inline' }, radios[0], 'as the agent (inherit)'),
      h('label', { class: 'field-inline' }, radios[1], 'none'),
      h('label', { class: 'field-inline' }, radios[2], 'only these:'),
      tools),
    h('label', { class: 'field-inline lead-field' }, lead, h('span', null, h('strong', null, 'Lead role ★'), ' — decides for its group; a group has exactly one lead')),
    err,
    h('div', { class: 'row-actions' }, submit, cancel));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    const body = {
      name: name.value.trim(), description: desc.value.trim(), system_prompt: prompt.value,
      model: model.value.trim(), is_lead: lead.checked,
    };
    const list = tools.value.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);
    const chosen = (radios.find((r) => r.checked) || radios[0]).value;
    if (chosen === 'none') body.allowed_tools = [];
    else if (chosen === 'only') body.allowed_tools = list;
    else if (editing) body.allowed_tools = null;
    if (chosen === 'only' && list.length === 0) {
      err.replaceChildren(errorBox({ status: 400, message: 'List the tools, or choose “none”.' }));
      return;
    }
    if (!editing && id.value.trim()) body.role_id = id.value.trim();
    submit.disabled = true;
    try {
      const r = editing
        ? await api('PUT', `/api/roles/${encodeURIComponent(role.role_id)}`, body)
        : await api('POST', '/api/roles', body);
      toast(`${editing ? 'Saved' : 'Created'} role ${r.name}`);
      if (!editing) form.reset();
      if (!editing) tools.disabled = true;
      onSaved(r);
    } catch (e2) {
      err.replaceChildren(errorBox(e2));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function groupForm(done) {
  const name = h('input', { name: 'name', required: true, maxlength: '200', placeholder: 'Launch team / 发布小组' });
  const id = h('input', { name: 'group_id', maxlength: '64', pattern: ID_PATTERN, placeholder: 'from the name' });
  const desc = h('input', { name: 'description', maxlength: '2000', placeholder: 'what the team is for' });
  const err = h('div', { class: 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create group');
  const form = h('form', { class: 'card create-form', id: 'group-create' },
    h('h2', null, 'New group · 新小组'),
    field('Name', name), field('Group id', id, 'lowercase letters, digits, - and _'), field('Description', desc),
    err, h('div', { class: 'row-actions' }, submit));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    const body = { name: name.value.trim() };
    if (id.value.trim()) body.group_id = id.value.trim();
    if (desc.value.trim()) body.description = desc.value.trim();
    submit.disabled = true;
    try {
      const g = await api('POST', '/api/groups', body);
      toast(`Created group ${g.name}`);
      form.reset();
      done(g);
    } catch (e2) {
      err.replaceChildren(errorBox(e2));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function groupEditForm(g, done, cancel) {
  const name = h('input', { name: 'name', required: true, maxlength: '200', value: g.name });
  const desc = h('input', { name: 'description', maxlength: '2000', value: g.description || '' });
  const err = h('div', { class: 'form-error' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save');
  const form = h('form', { class: 'stack group-edit', id: 'group-edit-form' },
    field('Name', name), field('Description', desc), err,
    h('div', { class: 'row-actions' }, submit, h('button', { type: 'button', onclick: cancel }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.replaceChildren();
    submit.disabled = true;
    try {
      const updated = await api('PUT', `/api/groups/${encodeURIComponent(g.group_id)}`, { name: name.value.trim(), description: desc.value.trim() });
      toast(`Saved ${updated.name}`);
      done(updated);
    } catch (e2) {
      err.replaceChildren(errorBox(e2));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
