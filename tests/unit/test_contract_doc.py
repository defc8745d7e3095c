"""docs/contract.md is the contract's data, rendered: current, and following a change (issue 29 item 1)."""

from __future__ import annotations

import copy
import re
import subprocess
import sys

from filter_plugins.fleet_contract import default_ports, load
from scripts.contract_doc import DOC, render
from tests.conftest import ROOT

CONTRACT = load()
PORTS = default_ports()


def flow_rows(text: str) -> list[tuple[str, ...]]:
    """(from, to, scope, ports) of each row of the document's flow table."""
    section = text.split("## Flows", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")][1:]
    return [(f.strip(), t.strip(), s.strip(), p.strip()) for f, t, s, p, _ in rows]


def test_the_document_is_what_the_data_gives():
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.contract_doc", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_its_flow_table_is_the_contracts_flows_with_their_port_numbers():
    expected = [
        (
            flow["from"],
            flow["to"],
            flow.get("scope", "any"),
            ", ".join(f"{p} ({PORTS[p]})" if p in PORTS else p for p in flow["ports"]),
        )
        for flow in CONTRACT["flows"]
    ]
    assert flow_rows(DOC.read_text()) == expected


def test_a_changed_port_or_flow_in_the_data_changes_the_document():
    text = render(CONTRACT, {**PORTS, "lb_frontend": 8081})
    assert ("web", "lb", "cell", "lb_frontend (8081)") in flow_rows(text)
    assert "8080" not in text
    changed = copy.deepcopy(CONTRACT)
    changed["flows"][5]["scope"] = "any"
    assert ("app", "db_replicas", "any", "postgres (5432)") in flow_rows(render(changed, PORTS))


def test_the_readme_sends_readers_to_the_document_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/contract.md)" in readme
    # The contract's home is the repository: no reader is sent outside it.
    assert not re.search(r"is `\.\./shared/ARCHITECTURE\.md`", readme)
