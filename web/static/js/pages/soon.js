// Pages whose features are not built yet. They say so plainly and show no
// made-up data.
import { h } from '../dom.js';
import { link } from '../api.js';

const features = {
  skills: {
    title: 'Skills',
    text: 'Skills arrive with the tool-governance work. There is nothing to show here yet.',
  },
};

export function render(root, { params }) {
  const f = features[params.feature] || { title: 'Coming later', text: 'This page is not built yet.' };
  document.title = `${f.title} · OpenIntern`;
  root.append(h('section', { class: 'page page-soon' },
    h('header', { class: 'page-head' }, h('h1', null, f.title)),
    h('div', { class: 'card soon-card' },
      h('p', { class: 'soon-title' }, 'Not available yet'),
      h('p', null, f.text),
      params.groupId ? h('p', { class: 'muted' }, `Group: ${params.groupId}`) : null,
      h('p', null, 'Meanwhile: ', link('/', 'chat with an agent'), ', ', link('/agents', 'manage agents'), ' or ', link('/runs', 'browse runs'), '.'))));
}
