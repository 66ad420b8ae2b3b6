"""Mend a copy of a ROS 2 tree that lost its symbolic links: a library such as lib/libddsc.so.0 arrives as a small
text file naming its target, and rclpy then fails to import ("file too short"). The tree is never written:

    python3 tools/ros2_links.py LIBDIR      prints a directory of real links to put first on LD_LIBRARY_PATH
                                            (nothing when LIBDIR needs no mending)

tools/with_ros2 runs it before starting a command; test/ros2_support.py imports it, so that the tests also run
with ROS 2 when the tree was only sourced (`source ../shared/ros2/jazzy/env.sh`): the test process preloads the
real libraries, and the ROS processes it starts get the mended LD_LIBRARY_PATH.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import sys
import tempfile
from pathlib import Path


def lost_links(lib: Path) -> dict[str, Path]:
    """{file name: the library it stands for} for each lost link in `lib`."""
    def named(f: Path) -> str | None:  # the file name a lost link holds, or None for a real file
        if f.is_symlink() or not f.is_file() or f.stat().st_size >= 256:
            return None
        target = f.read_bytes().decode("utf-8", "replace").strip()
        return target if target and "/" not in target and (lib / target).is_file() else None

    found = {}
    for f in sorted(lib.glob("*.so*")):
        target, hops = named(f), 0
        while target is not None and named(lib / target) is not None and hops < 8:  # libddsc.so -> .so.0 -> .so.0.10.5
            target, hops = named(lib / target), hops + 1
        if target is not None and named(lib / target) is None:
            found[f.name] = lib / target
    return found


def mend(lib: str | Path) -> Path | None:
    """A directory of real links for the lost ones in `lib` (created once per tree), or None when none are lost."""
    lib = Path(lib)
    links = lost_links(lib) if lib.is_dir() else {}
    if not links:
        return None
    fix = Path(tempfile.gettempdir()) / f"dm1_ros2_links_{os.getuid()}_{hashlib.md5(str(lib).encode()).hexdigest()[:8]}"
    fix.mkdir(parents=True, exist_ok=True)
    for name, target in links.items():
        link = fix / name
        if not (link.is_symlink() and os.readlink(link) == str(target)):
            tmp = fix / f".{name}.{os.getpid()}"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(target)
            os.replace(tmp, link)
    return fix


def mend_environment() -> list[Path]:
    """For this process and its children: mend every lost link on LD_LIBRARY_PATH, put the mended directories first,
    and preload the real libraries (this process's loader read LD_LIBRARY_PATH at start; a library loaded under its
    SONAME satisfies the extension modules that need it). -> the mended directories."""
    dirs = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if d]
    fixes = []
    for d in dirs:
        fix = mend(d)
        if fix is None:
            continue
        fixes.append(fix)
        for target in sorted(set(lost_links(Path(d)).values())):
            ctypes.CDLL(str(target), mode=ctypes.RTLD_GLOBAL)
    if fixes:
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join([*map(str, fixes), *dirs])
    return fixes


if __name__ == "__main__":
    fix = mend(sys.argv[1]) if len(sys.argv) == 2 else sys.exit(__doc__)
    if fix is not None:
        print(fix)
