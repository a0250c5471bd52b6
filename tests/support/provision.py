"""The real programs the tests need, found or provisioned on first use: `ensure("redis-server")`.

In order: the PATH; the cache folder (`$MOONSHIP_TEST_TOOLS`, default ~/.cache/moonship-test-tools); `apt-get
install -y` when this user may (root, or sudo without a password) and apt is there; otherwise the Debian
package and the dependencies this machine lacks, fetched with `apt-get download` and unpacked with `dpkg -x`
into the cache, run through a wrapper script that sets LD_LIBRARY_PATH. A file lock per tool keeps parallel
sessions (xdist workers, several checkouts) from provisioning the same tool at once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CACHE = Path.home() / ".cache" / "moonship-test-tools"
LOCK_TIMEOUT = 1800.0  # seconds to wait for another session provisioning the same tool
APT_TIMEOUT = 1200.0  # seconds for one apt-get or dpkg command


class ProvisionError(RuntimeError):
    """A tool could not be found or provisioned; the message names everything that was tried."""


@dataclass(frozen=True)
class Tool:
    package: str  # the Debian package
    program: str  # the executable inside it, relative to its root
    #: packages unpacked beside it even when this machine has them: the program finds their files next to it
    companions: tuple[str, ...] = ()


TOOLS = {
    # redis-server's binary is a link to redis-check-rdb in redis-tools
    "redis-server": Tool("redis-server", "usr/bin/redis-server", ("redis-tools",)),
    # /usr/bin/chromium is a shell script that reads /etc/chromium.d; unpacked, the binary is run directly,
    # and it reads its data (icudtl.dat, resources) from chromium-common's files beside it
    "chromium": Tool("chromium", "usr/lib/chromium/chromium", ("chromium-common",)),
    "chromedriver": Tool("chromium-driver", "usr/bin/chromedriver"),
}


def ensure(
    tool: str,
    *,
    cache: Path | None = None,
    search_path: str | None = None,
    apt_install: bool | None = None,
) -> Path:
    """The path of an executable `tool` (a key of TOOLS), provisioning it when it is missing.

    `search_path` replaces $PATH and `apt_install` the may-this-user-install check (for tests of this module).
    """
    spec = TOOLS[tool]
    found = shutil.which(tool, path=search_path)
    if found is not None:
        return Path(found)
    tried = [f"{tool} on the PATH: not found"]
    cache = (cache or Path(os.environ.get("MOONSHIP_TEST_TOOLS", DEFAULT_CACHE))).expanduser()
    wrapper = cache / "bin" / tool
    with _locked(cache / f".{tool}.lock", tried):
        found = shutil.which(tool, path=search_path)  # another session may have installed it meanwhile
        if found is not None:
            return Path(found)
        if os.access(wrapper, os.X_OK):
            return wrapper
        tried.append(f"{wrapper}: not there")
        if apt_install is None:
            apt_install = _may_install()
        if apt_install:
            install = [*_sudo(), "apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]
            install.append(spec.package)
            if _apt(install, tried, update=[*_sudo(), "apt-get", "update", "-q"]):
                found = shutil.which(tool, path=search_path) or shutil.which(tool, path="/usr/bin:/usr/sbin")
                if found is not None:
                    print(f"provision: {tool} installed with apt-get ({spec.package})", file=sys.stderr)
                    return Path(found)
                tried.append(f"{tool} not on the PATH after the install")
        else:
            tried.append("apt-get install: not root, no password-less sudo or no apt-get")
        _unpack(spec, cache / tool, tried)
        _write_wrapper(wrapper, cache / tool, spec)
        print(f"provision: {tool} unpacked from Debian packages into {cache / tool}", file=sys.stderr)
        return wrapper


class _locked:
    """An exclusive fcntl lock on `path`, waited for up to LOCK_TIMEOUT seconds."""

    def __init__(self, path: Path, tried: list[str]) -> None:
        self.path, self.tried = path, tried

    def __enter__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a")
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.file.close()
                    self.tried.append(f"{self.path}: locked by another session for {LOCK_TIMEOUT:.0f} s")
                    raise ProvisionError(_report(self.tried)) from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _report(tried: list[str]) -> str:
    return "could not provision: " + "; ".join(tried)


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo", "-n"]


def _may_install() -> bool:
    if shutil.which("apt-get") is None:
        return False
    if os.geteuid() == 0:
        return True
    if shutil.which("sudo") is None:
        return False
    probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, timeout=30, check=False)
    return probe.returncode == 0


def _run(
    command: list[str], tried: list[str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str] | None:
    """Runs `command`; None (and what went wrong in `tried`) when it fails."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    try:
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        tried.append(f"`{' '.join(command)}`: {e}")
        return None
    if result.returncode != 0:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        tried.append(f"`{' '.join(command)}` exited {result.returncode}: {last[0]}")
        return None
    return result


def _apt(command: list[str], tried: list[str], update: list[str]) -> bool:
    """Runs an apt-get command, again after `update` if it fails at first (package lists missing or old)."""
    if _run(command, tried) is not None:
        return True
    return _run(update, tried) is not None and _run(command, tried) is not None


def _unpack(spec: Tool, root: Path, tried: list[str]) -> None:
    """Downloads the package and the dependencies this machine does not have, and unpacks them into `root`."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        tried.append("apt-get download: no apt-get or dpkg on this machine")
        raise ProvisionError(_report(tried))
    names = _needed(spec, tried)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=".download-") as scratch:
        downloads = Path(scratch)
        if _run(["apt-get", "download", "-q", *names], tried, cwd=downloads) is None:
            raise ProvisionError(_report(tried))
        unpacked = downloads / "root"
        for deb in sorted(downloads.glob("*.deb")):
            if _run(["dpkg", "-x", str(deb), str(unpacked)], tried) is None:
                raise ProvisionError(_report(tried))
        _rebase_links(unpacked)
        if not (unpacked / spec.program).exists():
            tried.append(f"{spec.package} holds no {spec.program}")
            raise ProvisionError(_report(tried))
        shutil.rmtree(root, ignore_errors=True)
        unpacked.rename(root)


def _needed(spec: Tool, tried: list[str]) -> list[str]:
    """The tool's package, its companions and its recursive dependencies that dpkg does not list as
    installed."""
    package = spec.package
    flags = ["--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces"]
    depends = ["apt-cache", "depends", "--recurse", *flags, "--no-enhances", package]
    result = _run(depends, tried)
    fresh = not any(Path("/var/lib/apt/lists").glob("*_Packages*"))  # apt-get update never ran
    if result is None and fresh and _may_install():
        updated = _run([*_sudo(), "apt-get", "update", "-q"], tried) is not None
        result = _run(depends, tried) if updated else None
    if result is None:
        raise ProvisionError(_report(tried))
    lines = result.stdout.splitlines()
    # unindented lines name packages; <name> is a virtual package
    names = sorted({line.strip() for line in lines if line and not line[0].isspace() and line[0] != "<"})
    query = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Package}\t${db:Status-Abbrev}\n", *names],
        capture_output=True, text=True, timeout=60, check=False,
    )
    rows = [line.split("\t") for line in query.stdout.splitlines()]
    installed = {row[0].split(":")[0] for row in rows if row[-1].startswith("ii")}
    return [name for name in names if name in (package, *spec.companions) or name not in installed]


def _rebase_links(root: Path) -> None:
    """Points each symlink of the unpacked tree at its target in the tree, or else on this machine (where a
    package this machine has installed was not unpacked)."""
    for link in root.rglob("*"):
        if not link.is_symlink():
            continue
        target = os.readlink(link)
        absolute = target.startswith("/")
        inside = os.path.normpath(root / target.lstrip("/") if absolute else link.parent / target)
        host = "/" + os.path.relpath(inside, root)
        link.unlink()
        if os.path.lexists(inside) or not os.path.exists(host):
            link.symlink_to(os.path.relpath(inside, link.parent))
        else:
            link.symlink_to(host)


def _write_wrapper(wrapper: Path, root: Path, spec: Tool) -> None:
    multiarch = [d for top in ("usr/lib", "lib") for d in sorted((root / top).glob("*-linux-gnu"))]
    lib_dirs = [str(d) for d in [*multiarch, root / "usr" / "lib"] if d.is_dir()]
    fonts = root / "etc" / "fonts"
    lines = [
        "#!/bin/sh",
        f"# {spec.package} unpacked from Debian packages by tests/support/provision.py",
        f'export LD_LIBRARY_PATH="{":".join(lib_dirs)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"',
        *([f'export FONTCONFIG_PATH="{fonts}"'] if fonts.is_dir() else []),
        f'exec "{root / spec.program}" "$@"',
    ]
    wrapper.parent.mkdir(parents=True, exist_ok=True)
    partial = wrapper.with_suffix(".partial")
    partial.write_text("\n".join(lines) + "\n")
    partial.chmod(0o755)
    partial.rename(wrapper)
