"""One rule for outputs that already exist: nothing recorded or trained is replaced unless the user says so.

- a file (`dm1 eval --out`): refused when it exists, unless force;
- a run directory (`dm1 train`, `dm1 finetune`): refused when it holds a run, unless resume (continue it) or force
  (the old run is moved aside to DIR.replaced-TIMESTAMP, never deleted);
- a bundle directory (`dm1 export --out`): an existing bundle is replaced only with force (atomically, by the
  exporter), and a directory that is not a bundle is never replaced, whatever the flags.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as dt
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from dm1_ros.errors import Dm1Error

# what a bundle directory may hold: the manifest, the graph, and the exporter's optional extras
BUNDLE_FILES = frozenset({"manifest.yaml", "model.onnx", "model.opt.onnx", "README.md"})
RUN_FILES = ("last.pt", "log.csv")


class OutputExistsError(Dm1Error, FileExistsError):
    pass


def claim_file(path: str | Path, force: bool, what: str = "output") -> Path:
    """`path` may be written: it does not exist, or force. Raises OutputExistsError naming the file otherwise."""
    path = Path(path)
    if path.is_dir():
        raise OutputExistsError(f"{path} is a directory, not a {what} file")
    if path.exists() and not force:
        raise OutputExistsError(f"{path} exists; refusing to overwrite it with the {what} (pass --force to replace "
                                "it, or choose another path)")
    return path


def is_bundle(path: str | Path) -> bool:
    path = Path(path)
    return (path / "manifest.yaml").is_file() and {p.name for p in path.iterdir()} <= BUNDLE_FILES


def claim_bundle_dir(path: str | Path, force: bool) -> Path:
    """`path` may receive a bundle: it does not exist, is empty, or is a bundle and force is given."""
    path = Path(path)
    if not path.exists():
        return path
    if not path.is_dir():
        raise OutputExistsError(f"{path} exists and is not a directory; a bundle is a directory")
    if not any(path.iterdir()):
        return path
    if not is_bundle(path):
        extra = sorted(p.name for p in path.iterdir() if p.name not in BUNDLE_FILES)[:5]
        raise OutputExistsError(f"{path} is not a bundle (it holds {', '.join(extra)}); refusing to replace it, even "
                                "with --force: choose another --out")
    if not force:
        raise OutputExistsError(f"{path} already holds a bundle; pass --force to replace it")
    return path


@contextlib.contextmanager
def staged_bundle(path: str | Path, force: bool):
    """Write a bundle into the yielded staging directory; when the block ends without an error it replaces `path`
    in one rename (claim_bundle_dir's rules), so a reader never sees half a bundle and a failed write leaves the old
    one in place."""
    path = claim_bundle_dir(path, force=force)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    staging.chmod(0o755)
    try:
        yield staging
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            staging.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def holds_run(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


def claim_run_dir(path: str | Path, resume: bool, force: bool) -> Path:
    """A run directory to write into: new or empty, or holding a run that is resumed, or (force) a run that is
    moved aside first. Returns the path; creates it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"out_dir {path} exists and is not a directory")
    if holds_run(path) and not resume:
        if not force:
            held = ", ".join(n for n in RUN_FILES if (path / n).exists())
            raise OutputExistsError(f"{path} already holds a run ({held}); pass --resume to continue it or --force to "
                                    "start over (the old run is moved aside, not deleted), or set another out_dir")
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.replaced-{stamp}")
        n = 1
        while aside.exists():
            aside, n = path.with_name(f"{path.name}.replaced-{stamp}-{n}"), n + 1
        path.rename(aside)
        print(f"moved the previous run aside to {aside}", flush=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_run_log(path: str | Path, resume: bool, position: int, column: str):
    """A run's CSV log, open for appending rows. A new run starts it empty. A resumed run keeps the rows up to
    `position` (the checkpoint's value of `column`, the step or iteration) and drops the later ones: a run killed
    between checkpoints logged steps its checkpoint does not hold, and they are trained again."""
    path = Path(path)
    if not (resume and path.is_file()):
        return open(path, "w", newline="")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if rows and column in rows[0]:
        at = rows[0].index(column)
        kept = [rows[0], *(r for r in rows[1:] if len(r) > at and r[at] and float(r[at]) <= position)]
        if len(kept) < len(rows):
            staged = path.with_name(f".{path.name}.resumed")
            with open(staged, "w", newline="") as f:
                csv.writer(f).writerows(kept)
            staged.replace(path)  # one rename: a failure here leaves the old log whole
            print(f"{path}: dropped {len(rows) - len(kept)} rows logged after the checkpoint's {column} {position}",
                  flush=True)
    return open(path, "a", newline="")


def command_line(argv: list[str] | str | None = None) -> str:
    """The command as a user would type it again: `dm1 train ...`, not /abs/path/.venv/bin/dm1 train ..."""
    args = shlex.split(argv) if isinstance(argv, str) else list(argv if argv is not None else sys.argv)
    if args and Path(args[0]).name in ("dm1", "cli.py", "__main__.py"):
        args[0] = "dm1"
    return " ".join(shlex.quote(a) for a in args)
