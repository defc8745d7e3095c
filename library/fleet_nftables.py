#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load an nftables rule set when it or the live table has drifted from the last load."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: fleet_nftables
short_description: Apply an nftables rule set file, and notice rules changed by hand
description:
  - Loads O(src) with C(nft -f) in one transaction when the file changed since the
    last load or the live table differs from what that load left (a rule added or
    removed by hand). Otherwise reports no change.
  - Checks the file with C(nft -c -f) first; a file that fails the check, or a load
    that fails, leaves the running rules as they were.
  - In check mode reports whether it would load, and why, with the live table and
    the expected one as the diff.
  - Keeps the file's digest and the table's listing after the load in O(state_file)
    (mode 0600).
options:
  src:
    description: The rule set file; it must replace the table atomically.
    type: path
    required: true
  table:
    description: Name of the inet table the file defines.
    type: str
    default: fleet
  state_file:
    description: Where the digest and listing of the last load are kept.
    type: path
    required: true
author:
  - fleet
"""

EXAMPLES = r"""
- name: Apply the rule set
  fleet_nftables:
    src: /etc/nftables.conf
    table: fleet
    state_file: /var/lib/fleet-firewall/applied.json
"""

RETURN = r"""
reasons:
  description: Why the rule set was (or would be) loaded.
  returned: always
  type: list
  elements: str
"""


def _listing(module, nft, table):
    rc, out, _ = module.run_command([nft, "list", "table", "inet", table])
    return out if rc == 0 else None


def _save(path, state):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".applied.")
    with os.fdopen(fd, "w") as out:
        json.dump(state, out, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "table": {"type": "str", "default": "fleet"},
            "state_file": {"type": "path", "required": True},
        },
        supports_check_mode=True,
    )
    src, table, state_file = module.params["src"], module.params["table"], module.params["state_file"]
    nft = module.get_bin_path("nft", required=True)
    try:
        with open(src, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
    except OSError as exc:
        module.fail_json(msg=f"cannot read the rule set {src}: {exc}")
    state = {}
    if os.path.exists(state_file):
        try:
            with open(state_file) as handle:
                state = json.load(handle)
        except (OSError, ValueError):
            state = {}
    live = _listing(module, nft, table)
    reasons = []
    if live is None:
        reasons.append(f"table inet {table} is not loaded")
    elif live != state.get("listing"):
        reasons.append(f"the live table inet {table} differs from what the last load left (changed by hand?)")
    if digest != state.get("sha256"):
        reasons.append(f"{src} changed since it was last loaded")
    if not reasons:
        module.exit_json(changed=False, reasons=[])
    expected = state.get("listing", "") if digest == state.get("sha256") else f"(the rules of {src})\n"
    diff = {
        "before_header": f"live table inet {table}",
        "before": live or "",
        "after_header": f"table inet {table} as loaded from {src}",
        "after": expected,
    }
    if module.check_mode:
        module.exit_json(changed=True, reasons=reasons, diff=diff, msg="; ".join(reasons))
    rc, _, err = module.run_command([nft, "-c", "-f", src])
    if rc != 0:
        module.fail_json(msg=f"nft refused {src}; the running rules are untouched: {err.strip()}", reasons=reasons)
    rc, _, err = module.run_command([nft, "-f", src])
    if rc != 0:
        module.fail_json(msg=f"loading {src} failed; the running rules are untouched: {err.strip()}", reasons=reasons)
    after = _listing(module, nft, table)
    if after is None:
        module.fail_json(msg=f"{src} loaded but defines no table inet {table}", reasons=reasons)
    _save(state_file, {"sha256": digest, "listing": after})
    diff["after"] = after
    module.exit_json(changed=True, reasons=reasons, diff=diff, msg="; ".join(reasons))


if __name__ == "__main__":
    main()
