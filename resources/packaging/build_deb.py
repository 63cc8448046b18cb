"""Builds Parley's Debian package: the PyInstaller bundle with the offline models, under /opt/parley.

    .venv/bin/python resources/packaging/build_deb.py [--out dist]      (or: make package)

Steps, each timed:
 1. prepare_models.py assembles the LLMs into build/bundle-models (reused when already verified);
 2. PyInstaller builds the one-folder bundle from parley.spec straight into the package tree
    build/deb/debian/parley/opt/parley;
 3. the launcher /usr/bin/parley (a symlink), the menu entry, the icons and the copyright file
    are added; permissions are normalised (root-owned, 0755/0644);
 4. Depends are computed from the bundle's ELF files with dpkg-shlibdeps (the system libraries
    the bundle leaves out on purpose, see parley.spec) plus the ones loaded at run time
    (PortAudio, through ctypes);
 5. md5sums, Installed-Size and the control file are written and dpkg-deb packs it with zstd.
Prints the path of the .deb (last line of stdout) and a summary with sizes and times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parents[1]
PACKAGE: Final = "parley-assistant"
INSTALL_DIR: Final = "opt/parley"
ICON_SIZES: Final = (48, 64, 128, 256, 512)
RUNTIME_DEPENDS: Final = ("libportaudio2",)
"""Loaded with ctypes at run time, so invisible to dpkg-shlibdeps."""
DEFAULT_MAINTAINER: Final = "The Parley developers <parley@example.org>"
ELF_MAGIC: Final = b"\x7fELF"


def log(message: str) -> None:
    print(f"build_deb: {message}", file=sys.stderr, flush=True)


def run(command: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Runs a command, returns its stdout; exits with its stderr when it fails."""
    result = subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-8000:])
        raise SystemExit(f"build_deb: {' '.join(command[:3])} ... failed with exit code {result.returncode}")
    return result.stdout


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def prepare_models(python: str, models_out: Path, keys: Sequence[str]) -> Path:
    output = run([python, str(HERE / "prepare_models.py"), "--out", str(models_out), *keys])
    return Path(output.strip().splitlines()[-1])


def build_bundle(
    python: str, models_dir: Path, keys: Sequence[str], parts: Sequence[str], opt_dir: Path, work_dir: Path
) -> Path:
    env = dict(
        os.environ,
        PARLEY_BUNDLE_MODELS=str(models_dir),
        PARLEY_BUNDLE_LLMS=" ".join(keys),
        PARLEY_BUNDLE_PARTS=" ".join(parts),
    )
    run(
        [
            python, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
            "--workpath", str(work_dir), "--distpath", str(opt_dir), str(HERE / "parley.spec"),
        ],
        env=env,
    )  # fmt: skip
    bundle = opt_dir / "parley"
    if not (bundle / "parley").is_file():
        raise SystemExit(f"build_deb: PyInstaller did not produce {bundle / 'parley'}")
    return bundle


def add_desktop_files(tree: Path) -> None:
    """The launcher, the menu entry, the icons and the copyright file."""
    launcher = tree / "usr" / "bin" / "parley"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.symlink_to(f"/{INSTALL_DIR}/parley")
    applications = tree / "usr" / "share" / "applications"
    applications.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "resources" / "parley.desktop", applications / "parley.desktop")
    icons = tree / "usr" / "share" / "icons" / "hicolor"
    for size in ICON_SIZES:
        target = icons / f"{size}x{size}" / "apps" / "parley.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "resources" / "icons" / f"parley-{size}.png", target)
    scalable = icons / "scalable" / "apps" / "parley.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "resources" / "icons" / "parley.svg", scalable)
    doc = tree / "usr" / "share" / "doc" / PACKAGE
    doc.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HERE / "deb" / "copyright", doc / "copyright")


def normalise_permissions(tree: Path) -> None:
    """Folders 0755; files 0755 when executable, else 0644 (assembled models start as 0600)."""
    for folder, _dirs, files in os.walk(tree):
        os.chmod(folder, 0o755)
        for name in files:
            path = Path(folder, name)
            if path.is_symlink():
                continue
            executable = path.stat().st_mode & 0o111
            os.chmod(path, 0o755 if executable else 0o644)


def elf_files(bundle: Path) -> list[Path]:
    found: list[Path] = []
    for folder, dirs, files in os.walk(bundle):
        dirs[:] = [d for d in dirs if Path(folder, d) != bundle / "_internal" / "models"]
        for name in files:
            path = Path(folder, name)
            if path.is_symlink() or path.stat().st_size < 64:
                continue
            with path.open("rb") as f:
                if f.read(4) == ELF_MAGIC:
                    found.append(path)
    return found


def shlib_depends(deb_dir: Path, tree: Path, elves: Sequence[Path]) -> list[str]:
    """The packages the ELF files need (dpkg-shlibdeps); files needing absent libraries are skipped."""
    (deb_dir / "debian" / "control").write_text(f"Source: parley\n\nPackage: {PACKAGE}\nArchitecture: any\n")
    library_dirs = sorted({str(p.parent) for p in elves})
    pending = list(elves)
    for _attempt in range(3):
        command = [
            "dpkg-shlibdeps", "-O", "--ignore-missing-info", "--warnings=0",
            *(f"-l{d}" for d in library_dirs), *(f"-e{p.relative_to(deb_dir)}" for p in pending),
        ]  # fmt: skip
        result = subprocess.run(command, cwd=deb_dir, capture_output=True, text=True)
        if result.returncode == 0:
            line = next(x for x in result.stdout.splitlines() if x.startswith("shlibs:Depends="))
            return [d.strip() for d in line.split("=", 1)[1].split(",") if d.strip()]
        missing = re.findall(r"cannot find library (\S+) needed by (\S+)", result.stderr)
        if not missing:
            sys.stderr.write(result.stderr[-8000:])
            raise SystemExit("build_deb: dpkg-shlibdeps failed")
        skipped = {deb_dir / needer for _, needer in missing}
        for library in sorted({lib for lib, _ in missing}):
            log(f"warning: {library} is not installed here; the parts of the bundle that need it are "
                "left out of the computed Depends (install it and rebuild to include them)")  # fmt: skip
        pending = [p for p in pending if p not in skipped]
    raise SystemExit("build_deb: dpkg-shlibdeps kept failing")


def merge_depends(computed: Sequence[str], extra: Sequence[str]) -> str:
    by_name: dict[str, str] = {}
    for dependency in [*computed, *extra]:
        name = dependency.split()[0]
        by_name.setdefault(name, dependency)
    return ", ".join(by_name[name] for name in sorted(by_name))


def walk_tree(tree: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if not (folder == str(tree) and d == "DEBIAN")]
        for name in sorted(files):
            yield Path(folder, name)


def write_md5sums(tree: Path, debian: Path) -> None:
    lines = []
    for path in walk_tree(tree):
        if path.is_symlink():
            continue
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as f:
            while chunk := f.read(1 << 22):
                digest.update(chunk)
        lines.append(f"{digest.hexdigest()}  {path.relative_to(tree).as_posix()}\n")
    (debian / "md5sums").write_text("".join(lines))


def installed_size_kib(tree: Path) -> int:
    """As dpkg-gencontrol counts it: each file rounded up to KiB, each folder and symlink 1 KiB."""
    total = 0
    for folder, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if not (folder == str(tree) and d == "DEBIAN")]
        total += 1
        for name in files:
            path = Path(folder, name)
            total += 1 if path.is_symlink() else -(-path.stat().st_size // 1024)
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where the .deb goes (default dist/)")
    parser.add_argument("--build", type=Path, default=ROOT / "build", help="work folder (default build/)")
    parser.add_argument("--llms", default="default fast", help="LLMs to carry assembled (catalog keys)")
    parser.add_argument(
        "--parts", default="", help="split LLMs to carry as parts, assembled on first run (e.g. default)"
    )
    parser.add_argument("--python", default=sys.executable, help="the venv's python (with pyinstaller)")
    args = parser.parse_args(argv)
    keys = args.llms.split()
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = round(now - since, 1)
        log(f"{name}: {timings[name]} s")
        return now

    build: Path = args.build.resolve()
    deb_dir = build / "deb"
    tree = deb_dir / "debian" / PACKAGE
    t = time.monotonic()
    log("preparing the bundled models")
    models_dir = prepare_models(args.python, build / "bundle-models", keys)
    t = lap("models", t)
    if deb_dir.exists():
        shutil.rmtree(deb_dir)
    (tree / "DEBIAN").mkdir(parents=True)  # dpkg-shlibdeps resolves $ORIGIN only below a DEBIAN folder
    log("building the bundle with PyInstaller")
    bundle = build_bundle(args.python, models_dir, keys, args.parts.split(), tree / "opt", build / "pyinstaller")
    t = lap("pyinstaller", t)
    add_desktop_files(tree)
    normalise_permissions(tree)
    log("computing Depends")
    depends = merge_depends(shlib_depends(deb_dir, tree, elf_files(bundle)), RUNTIME_DEPENDS)
    t = lap("depends", t)
    debian = tree / "DEBIAN"
    write_md5sums(tree, debian)
    arch = run(["dpkg", "--print-architecture"]).strip()
    version = project_version()
    control = (HERE / "deb" / "control.in").read_text()
    for key, value in {
        "@VERSION@": version,
        "@ARCH@": arch,
        "@MAINTAINER@": os.environ.get("PARLEY_MAINTAINER", DEFAULT_MAINTAINER),
        "@INSTALLED_SIZE@": str(installed_size_kib(tree)),
        "@DEPENDS@": depends,
    }.items():
        control = control.replace(key, value)
    (debian / "control").write_text(control)
    normalise_permissions(debian)
    args.out.mkdir(parents=True, exist_ok=True)
    deb = args.out.resolve() / f"{PACKAGE}_{version}_{arch}.deb"
    log(f"packing {deb.name} (zstd)")
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(tree), str(deb)])
    t = lap("dpkg-deb", t)
    timings["total"] = round(time.monotonic() - started, 1)
    summary = {
        "deb": str(deb),
        "deb_bytes": deb.stat().st_size,
        "installed_kib": installed_size_kib(tree),
        "timings_s": timings,
        "depends": depends,
    }
    (build / "deb-summary.json").write_text(json.dumps(summary, indent=2))
    log(f"{deb.name}: {deb.stat().st_size / 1e6:.0f} MB, installs {summary['installed_kib'] / 1024:.0f} MiB, "
        f"built in {timings['total']:.0f} s")  # fmt: skip
    print(deb)
    return 0


if __name__ == "__main__":
    sys.exit(main())
