const parameters: Array<{ name: string; required: boolean; description: string; default?: string }> = [
  { name: 'action', required: true, description: 'Fencing action', default: 'reboot' },
  { name: 'plug', required: true, description: 'Node name (Docker label sf.node); nodename= when absent' },
  { name: 'cluster', required: true, description: 'Cluster id (Docker label sf.cluster)' },
  { name: 'pid_file', required: false, description: "Pid file of the node's agent process" },
  { name: 'docker_socket', required: false, description: 'Docker Engine socket', default: '/var/run/docker.sock' },
  { name: 'power_timeout', required: false, description: 'Seconds to wait for OFF after killing', default: '10' },
];

const actions = ['on', 'off', 'reboot', 'status', 'monitor', 'list', 'metadata', 'validate-all'];

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** `action=metadata`: the resource-agent XML that Pacemaker and pcs read. */
export function simAgentMetadata(): string {
  const params = parameters.map(
    (p) =>
      `\t<parameter name="${p.name}" unique="0" required="${p.required ? 1 : 0}">\n` +
      `\t\t<getopt mixed="--${p.name.replaceAll('_', '-')}=[value]" />\n` +
      `\t\t<content type="string"${p.default ? ` default="${escapeXml(p.default)}"` : ''} />\n` +
      `\t\t<shortdesc lang="en">${escapeXml(p.description)}</shortdesc>\n` +
      '\t</parameter>',
  );
  return [
    '<?xml version="1.0" ?>',
    '<resource-agent name="fence_sf_sim" shortdesc="Fence agent for a simulated Service Foundry node">',
    '<longdesc>Powers off a node of the one-machine simulation: SIGKILLs its agent process and its Docker containers. Powering on is a no-op: simulated nodes are started by sf up.</longdesc>',
    '<parameters>',
    ...params,
    '</parameters>',
    '<actions>',
    ...actions.map((a) => `\t<action name="${a}" />`),
    '</actions>',
    '</resource-agent>',
    '',
  ].join('\n');
}
