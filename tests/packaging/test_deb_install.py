"""The Debian package, tested the way a person uses it.

Builds the package from this tree (resources/packaging/build_deb.py: PyInstaller bundle with
the offline models), installs it with ``apt-get install ./parley-assistant_*.deb``, checks
the installed files and that every library of the bundle resolves on this system, runs the
installed ``parley --check-bundle`` on a virtual X display and ``parley --selftest`` on the
virtual sound card, both inside a fresh network namespace (no network at all, loopback
only) with an empty home folder, then removes the package and checks nothing is left.

Needs root (apt-get, unshare). Measured figures go to build/deb-install-report.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "parley-assistant"
INSTALL_DIR = Path("/opt/parley")
LAUNCHER = Path("/usr/bin/parley")
DESKTOP_FILE = Path("/usr/share/applications/parley.desktop")
ICON_SIZES = (48, 64, 128, 256, 512)
ICONS = [Path(f"/usr/share/icons/hicolor/{s}x{s}/apps/parley.png") for s in ICON_SIZES]
FREE_SPACE_NEEDED = 10 * 1024**3  # bundle tree, .deb, installed copy and the assembled-model cache
REPORT = ROOT / "build" / "deb-install-report.json"
OFFLINE = "ip link set lo up && ! ip route get 1.1.1.1 >/dev/null 2>&1 && exec "
"""Shell prefix run inside ``unshare --net``: loopback up, and proof that nothing else is reachable."""

pytestmark = [pytest.mark.slow, pytest.mark.package, pytest.mark.audio, pytest.mark.timeout(900)]


def _unavailable(reason: str) -> None:
    """Skips on a developer machine; fails in CI, which must run this test."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the package test: {reason}")
    pytest.skip(reason)


@dataclass
class Installed:
    deb: Path
    build_s: float
    install_s: float
    deb_bytes: int
    report: dict[str, Any] = field(default_factory=dict)

    def save(self) -> None:
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        REPORT.write_text(json.dumps(self.report, indent=2))


def _run(command: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)


def _purge() -> None:
    _run(["apt-get", "purge", "-y", PACKAGE], 300, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def _is_installed() -> bool:
    status = _run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], 30)
    return status.returncode == 0 and "install ok installed" in status.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """Builds the .deb and installs it with apt-get; purges it and deletes the build afterwards."""
    if not sys.platform.startswith("linux") or shutil.which("apt-get") is None:
        _unavailable("the package test needs a Debian-based system (apt-get)")
    if os.geteuid() != 0:
        _unavailable("the package test installs a .deb and creates network namespaces: run it as root")
    for tool in ("dpkg-deb", "dpkg-shlibdeps", "unshare", "ip", "xvfb-run", "ldd"):
        if shutil.which(tool) is None:
            _unavailable(f"{tool} is not installed (make install-test installs it)")
    free = shutil.disk_usage(ROOT).free
    if free < FREE_SPACE_NEEDED:
        _unavailable(f"only {free / 1024**3:.1f} GiB free; building and installing the package needs 10 GiB")
    if _is_installed():
        _purge()  # an earlier install (of another build) would make apt-get keep the old files
    out = tmp_path_factory.mktemp("deb")
    started = time.monotonic()
    build = _run([sys.executable, str(ROOT / "resources" / "packaging" / "build_deb.py"), "--out", str(out)], 600)
    build_s = time.monotonic() - started
    assert build.returncode == 0, f"building the package failed:\n{build.stderr[-6000:]}"
    deb = Path(build.stdout.strip().splitlines()[-1])
    assert deb.is_file() and deb.name.startswith(f"{PACKAGE}_") and deb.suffix == ".deb"
    started = time.monotonic()
    install = _run(
        ["apt-get", "install", "-y", "--no-install-recommends", f"./{deb.name}"],
        600,
        cwd=deb.parent,
        env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
    )
    install_s = time.monotonic() - started
    try:
        assert install.returncode == 0, f"apt-get install failed:\n{install.stdout[-3000:]}{install.stderr[-3000:]}"
        summary = json.loads((ROOT / "build" / "deb-summary.json").read_text())
        result = Installed(deb, build_s, install_s, deb.stat().st_size)
        result.report.update(
            deb=deb.name,
            deb_mb=round(result.deb_bytes / 1e6, 1),
            installed_mib=round(summary["installed_kib"] / 1024, 1),
            build_s=round(build_s, 1),
            build_steps_s=summary["timings_s"],
            install_s=round(install_s, 1),
        )
        deb.unlink()  # 2 GB: keep the disk free for the rest of the suite
        yield result
    finally:
        if _is_installed():
            _purge()
        deb.unlink(missing_ok=True)
        shutil.rmtree(ROOT / "build" / "deb", ignore_errors=True)


def _cold_env(home: Path) -> dict[str, str]:
    """A minimal environment with an empty home: no config, no data, no caches."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "LANG": "C.UTF-8",
    }
    for name in ("XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_RUNTIME_PATH"):  # the virtual sound card
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise AssertionError(f"no JSON line in the output:\n{text[-3000:]}")


def test_installs_launcher_menu_entry_icons_and_models(installed: Installed) -> None:
    assert LAUNCHER.is_symlink() and LAUNCHER.resolve() == INSTALL_DIR / "parley"
    assert os.access(LAUNCHER, os.X_OK)
    desktop = DESKTOP_FILE.read_text()
    assert "Exec=parley" in desktop and "Icon=parley" in desktop
    for icon in ICONS:
        assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", icon
    models = sorted((INSTALL_DIR / "_internal" / "models").glob("*.gguf"))
    assert [m.name for m in models] == [
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    ]
    for model in models:
        assert model.stat().st_mode & 0o004, f"{model} is not readable by every user"
    fields = _run(["dpkg-query", "-W", "-f=${Depends}\n${Installed-Size}", PACKAGE], 30).stdout.splitlines()
    depends = {d.strip().split()[0] for d in fields[0].split(",")}
    assert {"libportaudio2", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0"} <= depends
    assert {"libegl1", "libfontconfig1", "libdbus-1-3"} <= depends
    assert int(fields[1]) > 1_500_000  # KiB: the models alone are 1.5 GiB
    installed.report["depends"] = sorted(depends)


def test_every_bundled_library_resolves_on_this_system(installed: Installed) -> None:
    """ldd on every ELF file of the bundle, as the bootloader sets the library path: nothing missing."""
    internal = INSTALL_DIR / "_internal"
    elves = []
    for folder, dirs, files in os.walk(INSTALL_DIR):
        dirs[:] = [d for d in dirs if Path(folder, d) != internal / "models"]
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink() and path.stat().st_size > 64 and path.read_bytes()[:4] == b"\x7fELF":
                elves.append(path)
    assert len(elves) > 100
    missing: dict[str, list[str]] = {}
    env = dict(os.environ, LD_LIBRARY_PATH=str(internal))
    for elf in elves:
        out = _run(["ldd", str(elf)], 30, env=env).stdout
        for line in out.splitlines():
            if "not found" in line:
                missing.setdefault(line.split()[0], []).append(str(elf.relative_to(INSTALL_DIR)))
    assert not missing, f"libraries the package does not depend on: {json.dumps(missing, indent=1)[:3000]}"


def test_every_component_works_offline_on_an_x_display(installed: Installed, tmp_path: Path) -> None:
    """Qt on xcb (with the system's X libraries), PortAudio, both LLMs, voice, Whisper, VAD, AEC."""
    env = _cold_env(tmp_path / "home")
    env["QT_QPA_PLATFORM"] = "xcb"
    command = ["unshare", "--net", "sh", "-c", OFFLINE + "xvfb-run -a parley --check-bundle"]
    result = _run(command, 300, env=env)
    report = _json_line(result.stdout)
    failed = {name: check["detail"] for name, check in report["checks"].items() if not check["ok"]}
    assert result.returncode == 0 and report["ok"], f"failed checks: {failed}\n{result.stderr[-3000:]}"
    assert "on xcb" in report["checks"]["qt"]["detail"]
    assert "in the bundle" in report["checks"]["llm"]["detail"]
    assert "in the bundle" in report["checks"]["tts"]["detail"]
    installed.report["check_bundle"] = {name: check["detail"] for name, check in report["checks"].items()}


def _read_lines(stream: IO[str], lines: list[tuple[float, str]]) -> None:
    for line in stream:
        lines.append((time.monotonic(), line))


def test_installed_app_talks_offline_from_a_cold_start(installed: Installed, pulseaudio: str, tmp_path: Path) -> None:
    """`parley --selftest`: the backend child starts from the same executable, answers and speaks."""
    home = tmp_path / "home"
    command = ["unshare", "--net", "sh", "-c", OFFLINE + "parley --selftest"]
    launched = time.monotonic()
    process = subprocess.Popen(command, env=_cold_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=_read_lines, args=(process.stderr, stderr_lines), daemon=True)
    reader.start()
    try:
        process.wait(timeout=300)  # its stdout is one JSON line: it fits in the pipe
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    finished = time.monotonic()
    assert process.stdout is not None
    stdout = process.stdout.read()
    reader.join(timeout=10)
    stderr = "".join(line for _, line in stderr_lines)
    result = _json_line(stdout)
    assert process.returncode == 0 and result["ok"], f"selftest failed: {result}\n{stderr[-3000:]}"
    assert result["played_s"] > 0.3
    assert result["reply"].strip()
    assert result["llm"].startswith("qwen2.5-coder-1.5b")  # the default model, straight from the bundle
    ready_at = next((at for at, line in stderr_lines if line.startswith("selftest: ready after")), None)
    assert ready_at is not None, f"the selftest never reported ready:\n{stderr[-3000:]}"
    assert not (home / ".local" / "share" / "parley" / "models").exists(), "a bundled model was copied at start"
    installed.report["selftest"] = {
        "cold_start_launch_to_ready_s": round(ready_at - launched, 2),
        "selftest_total_s": round(finished - launched, 2),
        **{key: result[key] for key in ("ready_s", "ttft_s", "ttfa_s", "played_s", "llm", "tts", "reply")},
    }
    installed.save()


def test_removal_leaves_nothing_behind(installed: Installed) -> None:
    started = time.monotonic()
    removal = _run(["apt-get", "remove", "-y", PACKAGE], 300, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    assert removal.returncode == 0, removal.stderr[-3000:]
    assert not _is_installed()
    for path in (INSTALL_DIR, LAUNCHER, DESKTOP_FILE, *ICONS):
        assert not os.path.lexists(path), f"{path} is still there after removal"
    installed.report["remove_s"] = round(time.monotonic() - started, 1)
    installed.save()
