"""scripts/build-project-archive.sh: what goes into the project archive, reproducibility, the manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-project-archive.sh"
LOCK = "# a lock\nansible==12.3.0\nansible-core==2.19.14\n\nruamel.yaml==0.19.1  # a comment\n"
RUNTIME = "# what a control host runs\nansible-core==2.19.14\n"
COLLECTIONS = "---\ncollections:\n  - name: ansible.posix\n"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small work tree: committed, untracked, ignored and deleted files and a symlink."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(SCRIPT, repo / "scripts" / SCRIPT.name)
    (repo / "requirements.txt").write_text(LOCK)
    (repo / "requirements-runtime.txt").write_text(RUNTIME)
    (repo / "requirements.yml").write_text(COLLECTIONS)
    (repo / ".gitignore").write_text(".cache/\n.venv/\nsecret.txt\n")
    (repo / "group_vars").mkdir()
    (repo / "group_vars" / "all.yml").write_text("---\nx: 1\n")
    (repo / "playbooks").mkdir()
    (repo / "playbooks" / "group_vars").symlink_to("../group_vars")
    (repo / "gone.txt").write_text("deleted from the work tree, still in the index\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "init")
    (repo / "gone.txt").unlink()
    (repo / "untracked.txt").write_text("uncommitted work ships too\n")
    (repo / "private.txt").write_text("mode 0600 in the tree\n")
    (repo / "private.txt").chmod(0o600)
    (repo / "secret.txt").write_text("ignored\n")
    (repo / ".venv" / "bin").mkdir(parents=True)
    (repo / ".venv" / "bin" / "python").write_text("ignored\n")
    # Of .cache only the app releases ship (a check of the app servers needs them).
    (repo / ".cache" / "releases").mkdir(parents=True)
    (repo / ".cache" / "releases" / "fleet-app-1.0.0.tar.gz").write_bytes(b"release")
    (repo / ".cache" / "releases" / "fleet-app-1.0.0.tar.gz.sha256").write_text("0  fleet-app-1.0.0.tar.gz\n")
    (repo / ".cache" / "releases" / "notes.txt").write_text("ignored\n")
    (repo / ".cache" / "lab" / "secrets").mkdir(parents=True)
    (repo / ".cache" / "lab" / "secrets" / "vault").write_text("never ships\n")
    return repo


def build(repo: Path, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FLEET_VENV=str(repo / "no-venv"))
    return subprocess.run(
        [str(repo / "scripts" / SCRIPT.name), "--out", str(out), "--project-only", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def manifest(out: Path) -> dict:
    return json.loads((out / "fleet-project.json").read_text())


def test_archive_holds_the_work_tree_without_ignored_files_and_keeps_links(repo, tmp_path):
    out = tmp_path / "out"
    proc = build(repo, out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out / "fleet-project.json")
    archive = out / manifest(out)["project"]["archive"]
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert sorted(members) == [
        ".cache/releases/fleet-app-1.0.0.tar.gz",
        ".cache/releases/fleet-app-1.0.0.tar.gz.sha256",
        ".gitignore",
        "group_vars/all.yml",
        "playbooks/group_vars",
        "private.txt",
        "requirements-runtime.txt",
        "requirements.txt",
        "requirements.yml",
        "scripts/build-project-archive.sh",
        "untracked.txt",
    ]
    assert members["playbooks/group_vars"].issym()
    assert members["playbooks/group_vars"].linkname == "../group_vars"
    # One fixed time, root, and modes that do not depend on the work tree's umask.
    assert {m.mtime for m in members.values()} == {315532800}
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    assert members["private.txt"].mode == 0o644
    assert members["scripts/build-project-archive.sh"].mode == 0o755


def test_manifest_names_the_archive_by_its_sha256_and_lists_the_pins(repo, tmp_path):
    out = tmp_path / "out"
    assert build(repo, out).returncode == 0
    data = manifest(out)
    archive = out / data["project"]["archive"]
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert data["project"] == {"archive": f"fleet-project-{sha[:16]}.tar.gz", "sha256": sha}
    # The toolchain is named by everything that makes it: the lock, the runtime pins, the collections.
    lock = hashlib.sha256((LOCK + RUNTIME + COLLECTIONS).encode()).hexdigest()
    assert data["toolchain"] == {
        "archive": f"fleet-toolchain-{lock[:16]}.tar",
        "lock_sha256": lock,
        "python": "cp311-manylinux_x86_64",
        # What a control host runs, and the collections as the pinned bundle ships them.
        "requirements": ["ansible-core==2.19.14", "fleet-collections==12.3.0"],
    }


def test_same_tree_gives_the_same_bytes_and_a_change_a_new_archive(repo, tmp_path):
    out = tmp_path / "out"
    assert build(repo, out).returncode == 0
    first = manifest(out)["project"]
    # File times and a commit of the same content change nothing.
    os.utime(repo / "untracked.txt", (1_000_000_000, 1_000_000_000))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "commit the work")
    assert build(repo, out).returncode == 0
    assert manifest(out)["project"] == first
    (repo / "untracked.txt").write_text("changed\n")
    assert build(repo, out).returncode == 0
    second = manifest(out)["project"]
    assert second["sha256"] != first["sha256"]
    # Only the manifest's archive stays.
    assert sorted(p.name for p in out.iterdir()) == sorted(["fleet-project.json", second["archive"]])


def test_a_runtime_pin_that_is_not_the_locks_is_refused(repo, tmp_path):
    (repo / "requirements-runtime.txt").write_text("ansible-core==2.18.0\n")
    proc = build(repo, tmp_path / "out")
    assert proc.returncode != 0
    assert "requirements-runtime.txt pins what requirements.txt does not: ansible-core==2.18.0" in proc.stderr


def test_a_lock_line_that_is_not_a_pin_is_refused(repo, tmp_path):
    (repo / "requirements.txt").write_text("ansible>=12\n")
    proc = build(repo, tmp_path / "out")
    assert proc.returncode != 0
    assert "requirements.txt line 1 is not NAME==VERSION: ansible>=12" in proc.stderr
    assert not (tmp_path / "out" / "fleet-project.json").exists()
