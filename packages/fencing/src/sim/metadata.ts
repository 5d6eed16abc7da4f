interface SimParameter {
  name: string;
  required: boolean;
  description: string;
  /** `<content type>`: what the runner's option check holds values to. */
  type: 'string' | 'second';
  default?: string;
  /** An old name kept working (ClusterLabs marks it `deprecated="1"`). */
  deprecated?: boolean;
  /** The long option (`--plug`); the parameter's name with `-` for `_` when absent. */
  longOption?: string;
}

/**
 * Every option fence_sf_sim reads (sim-agent.ts), and no other: the runner refuses
 * options an agent does not declare here.
 */
const parameters: SimParameter[] = [
  { name: 'action', required: true, description: 'Fencing action', type: 'string', default: 'reboot' },
  {
    name: 'plug',
    required: true,
    description: 'Node name (Docker label sf.node); nodename= when absent',
    type: 'string',
  },
  {
    name: 'port',
    required: false,
    description: 'Node name (Docker label sf.node); nodename= when absent',
    type: 'string',
    deprecated: true,
    longOption: 'plug',
  },
  { name: 'cluster', required: true, description: 'Cluster id (Docker label sf.cluster)', type: 'string' },
  { name: 'pid_file', required: false, description: "Pid file of the node's agent process", type: 'string' },
  {
    name: 'boot_file',
    required: false,
    description:
      "An isolated node's boot file (sf up writes it): off kills every process of its namespace, on boots it",
    type: 'string',
  },
  {
    name: 'docker_socket',
    required: false,
    description: 'Docker Engine socket',
    type: 'string',
    default: '/var/run/docker.sock',
  },
  {
    name: 'power_timeout',
    required: false,
    description: 'Seconds to wait for OFF after killing',
    type: 'second',
    default: '10',
  },
];

const actions = ['on', 'off', 'reboot', 'status', 'monitor', 'list', 'metadata', 'validate-all'];

function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

/** `action=metadata`: the resource-agent XML that Pacemaker and pcs read. */
export function simAgentMetadata(): string {
  const params = parameters.map(
    (p) =>
      `\t<parameter name="${p.name}" unique="0" required="${p.required ? 1 : 0}"${p.deprecated ? ' deprecated="1"' : ''}>\n` +
      `\t\t<getopt mixed="--${p.longOption ?? p.name.replaceAll('_', '-')}=[value]" />\n` +
      `\t\t<content type="${p.type}"${p.default ? ` default="${escapeXml(p.default)}"` : ''} />\n` +
      `\t\t<shortdesc lang="en">${escapeXml(p.description)}</shortdesc>\n` +
      '\t</parameter>',
  );
  return [
    '<?xml version="1.0" ?>',
    '<resource-agent name="fence_sf_sim" shortdesc="Fence agent for a simulated Service Foundry node">',
    '<longdesc>Powers a node of the one-machine simulation off and on. An isolated node (boot_file): off kills every process of its network namespace at once (dockerd, containers, agent), on starts them as sf up does. A node sharing the host Docker Engine: off SIGKILLs its agent process and its containers; on is a no-op (sf up starts those nodes).</longdesc>',
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
