"""Which releases an app server removes: filter_plugins/fleet_releases.py."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from filter_plugins.fleet_releases import releases_to_prune


def test_the_oldest_others_go_so_that_keep_remain_with_the_new_one():
    present = ["1.0.0", "1.1.0", "1.2.0"]
    assert releases_to_prune(present, 3, ["1.3.0", "1.2.0"]) == ["1.0.0"]


def test_the_running_release_is_kept_when_it_is_the_oldest():
    # Three broken releases in a row: the first batch went back to 1.1.1 each time, so
    # the release it runs is the oldest of the others when 1.1.4 is staged.
    assert releases_to_prune(["1.1.1", "1.1.2", "1.1.3"], 3, ["1.1.4", "1.1.1"]) == ["1.1.2"]


def test_a_server_that_never_switched_holds_no_more_than_keep():
    # Staged three times, switched never: after staging 1.1.4 it holds 3, not 4.
    present = ["1.1.1", "1.1.2", "1.1.3"]
    kept = set(present) - set(releases_to_prune(present, 3, ["1.1.4", "1.1.1"])) | {"1.1.4"}
    assert kept == {"1.1.1", "1.1.3", "1.1.4"}


def test_a_rollback_keeps_its_target_and_the_running_release():
    # app_rollback: the target is older than what runs, and both are present.
    assert releases_to_prune(["1.0.0", "1.1.0", "1.2.0", "1.3.0"], 2, ["1.2.0", "1.3.0"]) == ["1.0.0", "1.1.0"]


def test_the_recorded_rollback_target_outlives_two_broken_releases():
    # Deployed 1.2.0 (recorded, 1.1.1 before it), then two broken ones staged: with
    # 1.1.1 protected (app_releases_protected), the older broken one goes instead,
    # and `bin/fleet deploy --rollback` still finds 1.1.1 on the server.
    present = ["1.1.1", "1.2.0", "1.2.1"]
    assert releases_to_prune(present, 3, ["1.2.2", "1.2.0", "1.1.1"]) == ["1.2.1"]
    # Without it, the rollback target is the oldest other and goes.
    assert releases_to_prune(present, 3, ["1.2.2", "1.2.0"]) == ["1.1.1"]


def test_versions_are_compared_as_numbers_not_text():
    assert releases_to_prune(["1.0.9", "1.0.10", "1.0.11"], 3, ["1.0.12", "1.0.11"]) == ["1.0.9"]


def test_nothing_goes_when_there_is_room():
    assert releases_to_prune(["1.0.0"], 3, ["1.1.0", "1.0.0"]) == []
    assert releases_to_prune([], 2, ["1.0.0", ""]) == []


def test_a_fresh_server_protects_only_the_release_it_is_about_to_run():
    # No current link yet: the running release is "".
    assert releases_to_prune(["1.0.0", "1.1.0"], 2, ["1.2.0", ""]) == ["1.0.0"]


def test_keep_below_the_protected_releases_is_refused():
    with pytest.raises(AnsibleFilterError, match="keeping 1 releases cannot keep every protected one"):
        releases_to_prune(["1.0.0"], 1, ["1.1.0", "1.0.0"])


def test_a_name_that_is_not_a_version_is_refused():
    with pytest.raises(AnsibleFilterError, match=r"'latest' is not a MAJOR\.MINOR\.PATCH version"):
        releases_to_prune(["latest", "1.0.0"], 3, ["1.1.0", "1.0.0"])
