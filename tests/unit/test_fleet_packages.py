"""dpkg's list of installed packages, read before apt runs (filter_plugins/fleet_packages.py)."""

from __future__ import annotations

import re

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.fleet_packages import SHOWFORMAT, FilterModule, dpkg_missing
from tests.conftest import ROOT

# What dpkg-query --show answers with the roles' format: installed, removed with its
# configuration left, half-configured; a name it does not know is on stderr only.
OUTPUT = "nginx ii \nchrony rc \nhaproxy iF \npython3 ii \n"


def test_only_installed_packages_are_present():
    names = ["nginx", "chrony", "haproxy", "python3", "socat", "pkg=1.2"]
    assert dpkg_missing(OUTPUT, names) == ["chrony", "haproxy", "socat", "pkg=1.2"]
    assert dpkg_missing(OUTPUT, ["nginx", "python3"]) == []


def test_no_answer_means_all_missing():
    # dpkg-query failed or is not there: apt decides, as before.
    assert dpkg_missing("", ["nginx"]) == ["nginx"]


@pytest.mark.parametrize(("output", "names"), [(None, ["nginx"]), (OUTPUT, "nginx"), (OUTPUT, None)])
def test_anything_else_is_an_error(output, names):
    with pytest.raises(AnsibleFilterError, match="fleet_dpkg_missing"):
        dpkg_missing(output, names)


def test_every_role_asks_dpkg_in_the_format_the_filter_reads():
    uses = {}
    for path in ROOT.glob("roles/*/tasks/**/*.yml"):
        text = path.read_text()
        if "ansible.builtin.apt:" in text:
            uses[path.relative_to(ROOT).as_posix()] = text
    assert len(uses) >= 7, sorted(uses)
    for path, text in uses.items():
        formats = re.findall(r"'(--showformat=[^']*)'", text)
        assert formats == [SHOWFORMAT.replace("\\n", "\\\\n")], (path, formats)
        assert "fleet_dpkg_missing(" in text, path


def test_registered():
    assert FilterModule().filters() == {"fleet_dpkg_missing": dpkg_missing}
