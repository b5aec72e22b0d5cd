"""The wheels a lent GPU machine lacks: download them where there is a registry, and install
there only those its own python3 lacks or has in an older version (standard library only).

    python3 -m bench.gpu.carry download WHEELS   # here: cp312 manylinux wheels of REQUIREMENTS
    python3 -m bench.gpu.carry plan WHEELS       # there: what would be installed, and why
    python3 -m bench.gpu.carry install WHEELS SITE

`install` never touches that python3's own packages: it puts the chosen wheels into SITE
(`pip install --no-index --no-deps --target`, or unzips them where pip is missing), to be
put first on PYTHONPATH. Nothing is resolved there: REQUIREMENTS lists every package needed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "gpu_requirements.txt"
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
PYTHON = "3.12"


def canonical(name: str) -> str:
    """PEP 503 name: "PyYAML", "typing_extensions" -> "pyyaml", "typing-extensions"."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_key(version: str) -> tuple[int, ...]:
    """Numeric release parts ("7.36.2" -> (7, 36, 2); "2.11.0+cu130" -> (2, 11, 0))."""
    parts = []
    for piece in version.split("+")[0].split("."):
        digits = re.match(r"\d+", piece)
        if digits is None:
            break
        parts.append(int(digits.group()))
    return tuple(parts)


def read_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    """name -> pinned version, from `name==version` lines (comments and blanks skipped)."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            if not sep:
                raise ValueError(f"{path}: {line!r} is not pinned with ==")
            pins[canonical(name)] = version.strip()
    return pins


@dataclass(frozen=True)
class Choice:
    name: str
    wheel: Path
    wanted: str
    have: str | None

    @property
    def install(self) -> bool:
        return self.have is None or version_key(self.have) < version_key(self.wanted)

    def text(self) -> str:
        if self.have is None:
            return f"install {self.name} {self.wanted} (missing)"
        if self.install:
            return f"install {self.name} {self.wanted} (has {self.have}, older)"
        return f"keep    {self.name} {self.have} (>= {self.wanted})"


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def plan(
    wheels: Path,
    pins: dict[str, str],
    have: Callable[[str], str | None] = installed_version,
) -> list[Choice]:
    """One choice per pinned package, from its wheel in `wheels`; a missing wheel is an error."""
    found = {canonical(w.name.split("-")[0]): w for w in sorted(wheels.glob("*.whl"))}
    missing = sorted(set(pins) - set(found))
    if missing:
        raise SystemExit(f"no wheel in {wheels} for: {', '.join(missing)} (run the download step)")
    return [Choice(name, found[name], pins[name], have(name)) for name in sorted(pins)]


def install(choices: Sequence[Choice], site: Path) -> None:
    chosen = [c.wheel for c in choices if c.install]
    site.mkdir(parents=True, exist_ok=True)
    if not chosen:
        return
    pip = [sys.executable, "-m", "pip"]
    if subprocess.run([*pip, "--version"], capture_output=True).returncode == 0:
        flags = ["--no-index", "--no-deps", "--no-compile", "--upgrade", "--quiet"]
        subprocess.run([*pip, "install", *flags, "--target", str(site), *map(str, chosen)], check=True)
        return
    for wheel in chosen:  # no pip: a wheel is a zip of what goes on sys.path
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)


def download(wheels: Path, requirements: Path = REQUIREMENTS) -> None:
    pins = read_requirements(requirements)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    command += ["--python-version", PYTHON, "--implementation", "cp", "--abi", "cp312", "--abi", "abi3"]
    command += ["--abi", "none"]
    for platform in (*PLATFORMS, "any"):
        command += ["--platform", platform]
    command += ["--dest", str(wheels), *(f"{name}=={version}" for name, version in pins.items())]
    subprocess.run(command, check=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m bench.gpu.carry", description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=("download", "plan", "install"))
    parser.add_argument("wheels", type=Path)
    parser.add_argument("site", type=Path, nargs="?", default=Path(".switchyard/gpu-site"))
    parser.add_argument("--requirements", type=Path, default=REQUIREMENTS)
    args = parser.parse_args(argv)
    if args.action == "download":
        download(args.wheels, args.requirements)
        size = sum(p.stat().st_size for p in args.wheels.glob("*.whl"))
        print(f"{len(list(args.wheels.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB in {args.wheels}")
        return 0
    choices = plan(args.wheels, read_requirements(args.requirements))
    print(f"python {sys.version.split()[0]} at {sys.executable}:")
    for choice in choices:
        print(f"  {choice.text()}")
    if args.action == "install":
        install(choices, args.site)
        print(f"installed {sum(c.install for c in choices)} wheels into {args.site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
