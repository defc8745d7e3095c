"""The app's release artifact is reproducible: only a change to what goes into it makes a new one."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from tests.conftest import ROOT, run


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True
    )


def build(repo: Path, out: Path) -> Path:
    proc = run([str(repo / "scripts" / "build-release.sh"), "--out", str(out)], cwd=repo)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (artifact,) = out.glob("fleet-app-*.tar.gz")
    return artifact


def test_a_commit_outside_the_app_does_not_change_the_artifact_and_one_inside_does(tmp_path):
    repo = tmp_path / "repo"
    git(ROOT, "clone", "--quiet", "--local", "--no-hardlinks", str(ROOT), str(repo))
    # Test the working tree's script and app, not the last commit's.
    shutil.copy2(ROOT / "scripts" / "build-release.sh", repo / "scripts" / "build-release.sh")
    shutil.rmtree(repo / "app")
    shutil.copytree(ROOT / "app", repo / "app", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--allow-empty", "-m", "working tree")
    first = sha256(build(repo, tmp_path / "a"))

    (repo / "docs" / "unrelated.md").write_text("not part of the app\n")
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--date=2030-01-01T00:00:00", "-m", "unrelated")
    assert sha256(build(repo, tmp_path / "b")) == first

    readme = next((repo / "app").glob("README*"), None) or (repo / "app" / "pyproject.toml")
    readme.write_text(readme.read_text() + "\n")
    git(repo, "commit", "--quiet", "-am", "app change")
    assert sha256(build(repo, tmp_path / "c")) != first
    shutil.rmtree(repo)
