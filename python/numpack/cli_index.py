"""The ``numpack index`` command: create, show, retrain and drop the vector index of an
array (``NumPack.create_index`` and friends)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from .numpack import NumPack

__all__ = ["EXAMPLES", "register"]

EXAMPLES = {
    "index": "numpack index create data.npk emb --metric cosine --nlist 1024 && "
    "numpack index info data.npk emb",
}


def cmd_index(args: argparse.Namespace, existing: Callable[[str], str]) -> int:
    with NumPack(existing(args.store)) as npk:
        if not npk.has_array(args.name):
            raise ValueError(f"{args.store}: no array named {args.name!r}")
        if args.action == "create":
            npk.create_index(args.name, metric=args.metric, nlist=args.nlist)
        elif args.action == "reindex":
            npk.reindex(args.name, nlist=args.nlist)
        elif args.action == "drop":
            if not npk.drop_index(args.name):
                raise ValueError(f"{args.store}: array {args.name!r} has no index")
            return 0
        info = npk.index_info(args.name)
    if info is None:
        raise ValueError(f"{args.store}: array {args.name!r} has no index")
    if args.json:
        print(json.dumps(info, indent=2))
    elif args.action == "info":
        state = "current" if info["current"] else "STALE (searches are exact; run reindex)"
        print(
            f"{args.name}: {info['kind']} {info['metric']}, {info['nlist']} lists, "
            f"{info['listed']} rows of {info['dim']}, imbalance {info['imbalance']:.2f}, "
            f"{info['base_bytes'] + info['log_bytes']} bytes, {state}"
        )
    return 0


def register(
    add: Callable[[str, str], argparse.ArgumentParser], existing: Callable[[str], str]
) -> None:
    """Adds the ``index`` command to the parser (``add(name, help)`` makes a subparser)."""

    def run(args: Any) -> int:
        return cmd_index(args, existing)

    p = add("index", "create, show, retrain (reindex) or drop the vector index of an array")
    p.add_argument("action", choices=["create", "info", "reindex", "drop"])
    p.add_argument("store")
    p.add_argument("name")
    p.add_argument("--metric", default="cosine", help="cosine, dot, l2 or l2sq (create)")
    p.add_argument("--nlist", type=int, help="lists (create, reindex; default about sqrt(rows))")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)
