"""The history commands of ``numpack``: ``log``, ``tag``, ``restore``, ``gc``, ``history``,
and ``STORE@VERSION`` / ``STORE@TAG`` for the reading commands (``info``, ``convert``,
``pack``)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .numpack import NumPack
from .snapshot import Snapshot

__all__ = ["EXAMPLES", "register", "snapshot_at", "split_version", "versioned_rows"]

EXAMPLES = {
    "log": "numpack log data.npk --json",
    "tag": "numpack tag data.npk good-ingest   (--version 12, --delete)",
    "restore": "numpack restore data.npk good-ingest",
    "gc": "numpack gc data.npk --keep-last 10 --older-than 86400",
    "history": "numpack history data.npk 100   (keep the last 100 versions)",
}


def split_version(target: str) -> tuple[str, int | str | None]:
    """``STORE@VERSION`` / ``STORE@TAG`` → ``(STORE, version or tag)``; plain ``STORE`` →
    ``(STORE, None)``.  A directory whose own name holds ``@`` is taken whole."""
    if "@" not in target or Path(target).exists():
        return target, None
    store, _, at = target.rpartition("@")
    return store, int(at) if at.isdigit() else at


def _open_at(store: str, at: int | str | None) -> NumPack:
    if at is None:
        return NumPack(store)
    return NumPack(store, version=at) if isinstance(at, int) else NumPack(store, tag=at)


@contextlib.contextmanager
def snapshot_at(store: str, at: int | str) -> Iterator[Snapshot]:
    """A snapshot of ``store`` at version ``at`` (an int) or tag ``at``, for reading commands
    given ``STORE@VERSION`` / ``STORE@TAG``."""
    with NumPack(store) as npk:
        snap = npk.snapshot(version=at) if isinstance(at, int) else npk.snapshot(tag=at)
    with snap:
        yield snap


def versioned_rows(store: str, at: int | str | None) -> list[dict[str, Any]]:
    """The arrays of ``store`` at a version: name, dtype, shape."""
    with _open_at(store, at) as npk:
        return [
            {
                "name": n,
                "dtype": str(npk.load(n, lazy=True).dtype),
                "shape": list(npk.get_shape(n)),
            }
            for n in npk.get_member_list()
        ]


def _time(t: float | None) -> str:
    if t is None:
        return ""
    return _dt.datetime.fromtimestamp(t).isoformat(sep=" ", timespec="seconds")


def cmd_log(args: argparse.Namespace, existing: Callable[[str], str]) -> int:
    with NumPack(existing(args.store)) as npk:
        versions = npk.versions()
        setting = npk.history()
    if args.json:
        print(json.dumps({"store": args.store, "keep_last": setting, "versions": versions}))
        return 0
    print(f"{args.store}: keeps the last {setting} versions" if setting else
          f"{args.store}: history off (snapshots only)")  # fmt: skip
    for v in versions:
        tags = f"  [{', '.join(v['tags'])}]" if v["tags"] else ""
        aborted = "  (aborted)" if v["aborted"] else ""
        arrays = ",".join(v["arrays"])
        print(
            f"{v['version']:>8}  {_time(v['time']):19}  {v['operation'] or '':11}  "
            f"{v['bytes_kept']:>12}  {arrays}{tags}{aborted}"
        )
    return 0


def cmd_tag(args: argparse.Namespace, existing: Callable[[str], str]) -> int:
    with NumPack(existing(args.store)) as npk:
        if args.delete:
            npk.untag(args.name)
        else:
            v = npk.tag(args.name, args.version)
            if not args.quiet:
                print(v)
    return 0


def cmd_restore(args: argparse.Namespace, existing: Callable[[str], str]) -> int:
    at: int | str = int(args.version) if args.version.isdigit() else args.version
    with NumPack(existing(args.store)) as npk:
        v = npk.restore(at)
    if not args.quiet:
        print(v)
    return 0


def cmd_gc(args: argparse.Namespace, existing: Callable[[str], str]) -> int:
    with NumPack(existing(args.store)) as npk:
        report = npk.gc(keep_last=args.keep_last, older_than=args.older_than)
    if not args.quiet:
        print(json.dumps(report))
    return 0


def cmd_history(args: argparse.Namespace, existing: Callable[[str], str]) -> int:
    with NumPack(existing(args.store)) as npk:
        npk.set_history(args.keep_last)
    return 0


def register(
    add: Callable[[str, str], argparse.ArgumentParser], existing: Callable[[str], str]
) -> None:
    """Adds the history commands to the parser (``add(name, help)`` makes a subparser)."""

    def run(f: Callable[[argparse.Namespace, Callable[[str], str]], int]) -> Any:
        return lambda args: f(args, existing)

    p = add("log", "list the versions of a store (number, time, operation, bytes kept, tags)")
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run(cmd_log))

    p = add("tag", "name a version (the current one by default); tagged versions are kept")
    p.add_argument("store")
    p.add_argument("name")
    p.add_argument("--version", type=int, help="the version to tag (default: current)")
    p.add_argument("--delete", action="store_true", help="remove the tag instead")
    p.set_defaults(func=run(cmd_tag))

    p = add("restore", "make the current state equal an older version (a new commit)")
    p.add_argument("store")
    p.add_argument("version", help="version number or tag")
    p.set_defaults(func=run(cmd_restore))

    p = add("gc", "collect history beyond the last N versions (and older than S seconds)")
    p.add_argument("store")
    p.add_argument("--keep-last", type=int, help="default: the store's setting")
    p.add_argument("--older-than", type=float, help="seconds")
    p.set_defaults(func=run(cmd_gc))

    p = add("history", "set how many versions a store keeps (0: history off)")
    p.add_argument("store")
    p.add_argument("keep_last", type=int)
    p.set_defaults(func=run(cmd_history))
