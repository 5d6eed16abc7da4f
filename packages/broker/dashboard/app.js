// The dashboard page (docs/dashboard.md): plain browser JavaScript, no build step, no CDN.
// State arrives over server-sent events; actions call the operator API routes `sf` uses,
// each behind a confirmation. Every value is put into the page as text, never as HTML.

const $ = (selector) => document.querySelector(selector);

/** A table cell (or any element) holding `text`, with an optional class. */
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement('tr');
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el('td', cell));
  return tr;
}

function percent(used, total) {
  return total ? `${Math.round((100 * used) / total)}%` : '-';
}

function age(at) {
  if (!at) return '-';
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function notice(text, bad) {
  const n = $('#notice');
  n.textContent = text;
  n.className = bad ? 'bad' : 'good';
}

/** An action button: asks first, then POSTs to the operator API and says what came back. */
function action(label, question, path) {
  const button = el('button', label);
  button.addEventListener('click', async () => {
    if (!window.confirm(question)) return;
    try {
      const res = await fetch(path, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      const body = await res.json().catch(() => ({}));
      if (res.ok) notice(`${label}: ${body.message || 'done'}`, false);
      else notice(`${label} refused (${res.status}): ${body.description || body.error || ''}`, true);
    } catch (error) {
      notice(`${label} failed: ${error.message}`, true);
    }
  });
  return button;
}

/** What `sf explain NAME` prints, for one instance, under the instances table. */
function explainButton(instance) {
  const button = el('button', 'explain');
  button.addEventListener('click', async () => {
    const res = await fetch(`/sf/v1/instances/${encodeURIComponent(instance.id)}/explain`);
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      notice(`explain refused (${res.status}): ${body.description || ''}`, true);
      return;
    }
    $('#explain-name').textContent = instance.name;
    $('#explain').replaceChildren(...body.sentences.map((s) => el('li', s, s.startsWith('Risk:') ? 'bad' : '')));
    $('#explain-panel').hidden = false;
  });
  return button;
}

function nodeState(node) {
  if (!node.alive) return 'down';
  if (node.fence && node.fence !== 'unfenced') return node.fence;
  if (node.control?.draining) return 'draining';
  if (node.control?.cordoned) return 'cordoned';
  return 'ready';
}

function renderNodes(nodes) {
  const body = $('#nodes tbody');
  body.replaceChildren(
    ...nodes.map((node) => {
      const state = nodeState(node);
      const cap = node.capacity || {};
      const actions = el('td');
      const path = (verb) => `/sf/v1/nodes/${encodeURIComponent(node.name)}/${verb}`;
      if (state === 'cordoned' || state === 'draining') {
        actions.append(action('uncordon', `Uncordon ${node.name}?`, path('uncordon')));
      } else if (node.alive) {
        actions.append(action('cordon', `Cordon ${node.name}? No new replica will be placed there.`, path('cordon')));
        actions.append(action('drain', `Drain ${node.name}? Its replicas move to other nodes.`, path('drain')));
      }
      const tr = row([
        node.name,
        el('td', state, state === 'ready' ? 'good' : 'bad'),
        node.labels.zone || '-',
        percent(node.allocated.cpuMillis, cap.cpuMillis),
        percent(node.allocated.memoryMb, cap.memoryMb),
        percent(node.allocated.diskMb, cap.diskMb),
        node.replicas.map((r) => `${r.instanceId.slice(0, 8)}/${r.ordinal}`).join(' '),
        actions,
      ]);
      tr.dataset.node = node.name;
      return tr;
    }),
  );
}

function renderInstances(instances) {
  const body = $('#instances tbody');
  body.replaceChildren(
    ...instances.map((i) => {
      const replicas = i.replicaDetails
        .map((r) => `${r.ordinal}: ${r.node || '-'} ${r.role || ''} ${r.state}${r.position ? ` @${r.position}` : ''}`)
        .join('\n');
      const actions = el('td');
      actions.append(
        explainButton(i),
        action('backup', `Back up ${i.name} now?`, `/sf/v1/instances/${encodeURIComponent(i.id)}/backups`),
      );
      const tr = row([
        i.name,
        `${i.service} / ${i.plan}`,
        el('td', i.phase, i.phase === 'ready' ? 'good' : i.phase === 'failed' ? 'bad' : ''),
        i.primary ? `${i.primary.node} (${i.primary.epoch})` : '-',
        el('td', replicas),
        i.io ? `${i.io.durability}, ${i.io.localIo}` : '-',
        i.failover ? i.failover.fencing : '-',
        i.route ? `${i.route.host}:${i.route.port}` : '-',
        i.backup ? `${i.backup.state} ${age(i.backup.completedAt || i.backup.requestedAt)}` : 'none',
        actions,
      ]);
      tr.dataset.instance = i.name;
      tr.children[4].style.whiteSpace = 'pre';
      return tr;
    }),
  );
}

function renderFencing(history) {
  $('#fencing tbody').replaceChildren(
    ...history.map((h) =>
      row([
        age(h.finishedAt),
        h.node,
        h.action,
        el('td', h.result, h.result === 'failed' ? 'bad' : ''),
        h.by,
        h.detail,
      ]),
    ),
  );
}

function addEvent(event) {
  const list = $('#events');
  const item = el('li', `${event.at.slice(11, 19)} ${event.kind}: ${event.message}`);
  item.dataset.kind = event.kind;
  list.prepend(item);
  while (list.children.length > 200) list.lastElementChild.remove();
}

async function loadEvents() {
  const res = await fetch('/sf/v1/events?limit=50');
  if (!res.ok) return;
  for (const event of await res.json()) addEvent(event);
}

function connect() {
  const stream = new EventSource('/sf/v1/dashboard/stream');
  const badge = $('#connection');
  stream.addEventListener('open', () => {
    badge.textContent = 'live';
    badge.className = 'badge live';
  });
  stream.addEventListener('error', () => {
    // EventSource reconnects by itself.
    badge.textContent = 'reconnecting…';
    badge.className = 'badge down';
  });
  stream.addEventListener('state', (message) => {
    const state = JSON.parse(message.data);
    renderNodes(state.nodes);
    renderInstances(state.instances);
    renderFencing(state.fencing);
  });
  stream.addEventListener('event', (message) => addEvent(JSON.parse(message.data)));
  stream.addEventListener('problem', (message) => notice(JSON.parse(message.data).message, true));
}

void loadEvents().finally(connect);
