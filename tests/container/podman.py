"""Podman as the container test drives it: the runtime flags this kernel needs, a base
image built from Debian packages (no registry is reachable), wheels from the host.

Each helper runs one podman command and fails with its output; nothing is shelled out
through a string.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: crun fails on this kernel's cgroups; runc with cgroupfs works (see docs/integrations).
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
BASE_IMAGE = "localhost/relier-ci-base:bookworm"
#: What the base image holds: Debian's Python (the image's interpreter) and redis-server
#: (the stack's Redis: the official redis image cannot be pulled here).
BASE_PACKAGES = "python3,python3-venv,redis-server,ca-certificates"
#: Wheels the image build needs besides relier's own dependencies: the build backend,
#: the optional speed-ups, the api service's server, and a dependency redis-py has only
#: on Debian's Python 3.11.2 (the host's newer 3.11 does not pull it in).
EXTRA_WHEELS = ["hatchling", "uvloop", "hiredis", "fastapi", "uvicorn", "async-timeout"]
#: The files the Dockerfile copies (its .dockerignore lets in only these).
CONTEXT_FILES = ["Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "relier",
                 "examples", "docker/wheelhouse"]


def missing_tools() -> list[str]:
    """The tools this test needs that are not installed."""
    return [tool for tool in ("podman", "runc") if shutil.which(tool) is None]


def podman(*args: str, timeout: float = 300, check: bool = True) -> str:
    """Run one podman command; its stdout, or an AssertionError with its output."""
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} failed ({done.returncode}):\n"
                             f"{done.stdout}\n{done.stderr}")
    return done.stdout


def podman_ok(*args: str, timeout: float = 60) -> bool:
    """Whether a podman command succeeds (a health check, an image lookup)."""
    done = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    return done.returncode == 0


def cache_dir() -> Path:
    """Where the base image tarball is kept between runs (outside the repository)."""
    configured = os.environ.get("RELIER_CI_CACHE", "/var/cache/relier-ci")
    path = Path(configured)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / "relier-ci"


def ensure_base_image() -> str:
    """The Debian base image: already loaded, else imported from the cached tarball, else
    built with mmdebstrap (about two minutes) and cached."""
    if podman_ok("image", "exists", BASE_IMAGE):
        return BASE_IMAGE
    tarball = cache_dir() / "base-bookworm.tar"
    if not tarball.exists():
        _debootstrap(tarball)
    podman("import", str(tarball), BASE_IMAGE, timeout=600)
    return BASE_IMAGE


def _debootstrap(tarball: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        raise AssertionError("no base image and no mmdebstrap to build one "
                             "(apt-get install -y mmdebstrap)")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    partial = tarball.with_suffix(".partial.tar")
    subprocess.run(["mmdebstrap", "--variant=apt", f"--include={BASE_PACKAGES}", "bookworm",
                    str(partial)], check=True, capture_output=True, timeout=900)
    partial.rename(tarball)


def build_context(root: Path, into: Path) -> Path:
    """A copy of what the Dockerfile needs, with the host's wheels in docker/wheelhouse."""
    for name in CONTEXT_FILES:
        source, target = root / name, into / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    wheelhouse = into / "docker" / "wheelhouse"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheelhouse),
                    str(root), *EXTRA_WHEELS], check=True, capture_output=True, timeout=600)
    for own in wheelhouse.glob("relier-*.whl"):
        own.unlink()  # the image builds relier from the copied source, as a user's would
    return into


def podman_logs(container: str) -> str:
    """A container's output, stdout and stderr interleaved."""
    done = subprocess.run([*PODMAN, "logs", container], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    return done.stdout
