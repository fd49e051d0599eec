# -*- coding: utf-8 -*-
# Documentation only (ansible-doc reads it): the module is workload.ps1, PowerShell for Linux targets.

DOCUMENTATION = r'''
---
module: workload
short_description: Protect one container with NvRedirect (take-over, mode, policy rules)
description:
  - Takes a container's interfaces over into an enforcer namespace, registers it with the enforcer's nvr-dp datapath
    and sets its mode and policy rules, or gives it back with I(state=absent).
  - Builds a one-workload configuration document (docs/configuration.md) with C(removeUnlisted=false), so the
    enforcer's other workloads are left alone, and converges it with Set-NvRedirectConfiguration
    (Test-NvRedirectConfiguration -Detailed in check mode). C(changed) is whether a change was (or would be) made.
  - Written in PowerShell; the target needs the NvRedirect module where C(Import-Module NvRedirect) finds it and a
    C(pwsh) on PATH (C(dotnet pwsh ./build.ps1 Install)), or I(ansible_pwsh_interpreter) naming one. Runs as root.
options:
  container:
    description: A podman or docker container name or id. Exactly one of I(container), I(container_pid), I(netns_path).
    type: str
  container_pid:
    description: A process of the container.
    type: int
  netns_path:
    description: The container's network namespace file (/proc/PID/ns/net, /run/netns/NAME, ...).
    type: str
  namespace:
    description: The enforcer namespace.
    type: str
    default: nvr-enforcer
  interfaces:
    description: Only these interfaces of the container; default every Ethernet interface.
    type: list
    elements: str
  mode:
    description: The workload's mode; C(none) registers it without a policy (everything passes).
    type: str
    choices: [discover, monitor, protect, none]
    default: none
  rules:
    description: The policy rules in matching order (first match wins), as docs/configuration.md describes them.
    type: list
    elements: dict
    suboptions:
      id: {type: int, description: The rule id (default the next free one).}
      direction: {type: str, choices: [ingress, egress], default: ingress, description: Towards the workload or from it.}
      protocol: {type: str, default: any, description: "any, tcp, udp, icmp or a number."}
      source: {type: str, default: any, description: "The client: any, an address, a CIDR or FIRST-LAST."}
      destination: {type: str, default: any, description: The server, as I(source).}
      port: {type: str, default: any, description: "The server port: any, N or FIRST-LAST."}
      action: {type: str, default: allow, description: "allow, deny, violate, learn, open, ..."}
  state:
    description: C(present) protects the workload, C(absent) gives it back exactly as it was.
    type: str
    choices: [present, absent]
    default: present
  control_socket:
    description: The enforcer datapath's control socket (started there when none runs).
    type: str
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: NvRedirect
'''

EXAMPLES = r'''
- name: Protect the podman container web, letting only TCP 8080 in
  nvredirect.core.workload:
    container: web
    mode: protect
    rules:
      - {direction: ingress, protocol: tcp, source: 10.88.0.0/16, port: 8080, action: allow}

- name: Give it back
  nvredirect.core.workload:
    container: web
    state: absent
'''

RETURN = r'''
start:
  description: When the module started on the target (local time, as ansible.builtin.command reports it).
  returned: success
  type: str
end:
  description: When it ended.
  returned: success
  type: str
delta:
  description: How long it took.
  returned: success
  type: str
changes:
  description: The steps made (or, in check mode, planned), in order, with the state before and after as text.
  returned: always
  type: list
  elements: dict
interceptions:
  description: The workload's taken-over interfaces afterwards (interface, workload_mac, entry_link, inner_link, mode, control_socket, backend).
  returned: always
  type: list
  elements: dict
namespace:
  description: The enforcer namespace.
  returned: always
  type: str
'''
