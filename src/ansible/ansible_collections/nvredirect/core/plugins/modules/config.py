# -*- coding: utf-8 -*-
# Documentation only (ansible-doc reads it): the module is config.ps1, PowerShell for Linux targets.

DOCUMENTATION = r'''
---
module: config
short_description: Converge an NvRedirect enforcer to a configuration document
description:
  - Converges the enforcer a configuration document describes (docs/configuration.md, docs/configuration.schema.json)
    with Set-NvRedirectConfiguration: starts its datapath, takes over the listed containers, sets their modes and
    rules, gives back what the document marks absent or (with removeUnlisted, the default) does not list.
  - Check mode plans with Test-NvRedirectConfiguration -Detailed and changes nothing. Diff mode shows the running
    document before and after (in check mode, the planned steps' before and after).
  - Written in PowerShell; the target needs the NvRedirect module and a pwsh (C(dotnet pwsh ./build.ps1 Install)),
    or I(ansible_pwsh_interpreter) naming one. Runs as root.
options:
  config:
    description: The document itself. Exactly one of I(config) and I(path).
    type: dict
  path:
    description: A JSON file with the document, on the target.
    type: str
attributes:
  check_mode: {support: full}
  diff_mode: {support: full}
author: NvRedirect
'''

EXAMPLES = r'''
- name: Converge the enforcer
  nvredirect.core.config:
    config:
      namespace: nvr-enforcer
      workloads:
        - {container: web, mode: protect, rules: [{protocol: tcp, port: 8080}]}
        - {container: db, mode: monitor}
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
  description: The steps made (or planned), in order (step, action, target, reason, before, after).
  returned: always
  type: list
  elements: dict
configuration:
  description: The enforcer's running configuration afterwards, as Get-NvRedirectConfiguration exports it.
  returned: when the enforcer namespace exists
  type: dict
'''
