"""The ``numpack`` command: look inside, check, convert and move stores.

Examples
--------
numpack info data.npk                  table of arrays (``--json`` for scripts)
numpack pack data.npk -o data.npkg     one file, zstd (``--shuffle`` for a better ratio)
numpack unpack data.npkg -o restored.npk
numpack verify data.npk                exit status 1 when anything is wrong
numpack convert emb.parquet data.npk --name emb
numpack convert data.npk:emb emb.npy
numpack compact data.npk               physically remove deleted rows
numpack drop data.npk old_emb          delete whole arrays
numpack log data.npk                   versions (see also tag, restore, gc, history)
numpack info data.npk@12               the arrays of version 12 (or @TAG)
numpack convert data.npk@good:emb emb.npy   (convert and pack read STORE@VERSION too)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import _core, cli_history, cli_index
from .exceptions import CorruptStoreError
from .numpack import NumPack
from .package import get_package_info, pack, unpack
from .snapshot import Snapshot

__all__ = ["main"]

EXAMPLES = {
    "info": "numpack info data.npk --json",
    "pack": "numpack pack data.npk -o backup/data.npkg --level 6 --shuffle",
    "unpack": "numpack unpack data.npkg -o restored.npk --overwrite",
    "verify": "numpack verify data.npk && numpack verify data.npkg",
    "convert": "numpack convert emb.parquet data.npk --name emb && "
    "numpack convert data.npk:emb out.npy",
    "compact": "numpack compact data.npk emb labels",
    "drop": "numpack drop data.npk old_emb",
    **cli_history.EXAMPLES,
    **cli_index.EXAMPLES,
}


class _Failure(Exception):
    """A failure reported as one line on stderr with exit status 1."""


def _progress(args: argparse.Namespace, label: str) -> Callable[[int, int], None] | None:
    """A progress callback drawing a bar on a terminal, or None when quiet / not a TTY."""
    if args.quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:

        def simple(done: int, total: int) -> None:
            pct = 100 * done // total if total else 100
            sys.stderr.write(f"\r{label}: {pct:3d}%")
            if done >= total:
                sys.stderr.write("\n")

        return simple
    bar = tqdm(total=0, unit="B", unit_scale=True, desc=label, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _attrs(store: Any, name: str) -> dict[str, Any]:
    """An array's attributes; a damaged attributes file is reported, not fatal."""
    try:
        out: dict[str, Any] = json.loads(store.attrs(name))
    except CorruptStoreError as e:
        return {"<unreadable>": str(e)}
    return out


def _store_rows(path: Path) -> list[dict[str, Any]]:
    if not (path / "metadata.npkm").is_file():
        raise _Failure(f"{path}: not a NumPack store (no metadata.npkm)")
    store = _core.Store(str(path))
    try:
        rows = []
        for name in store.names():
            info = store.info(name)
            rows.append(
                {
                    "name": name,
                    "dtype": str(store.dtype(name)),
                    "shape": list(info["logical_shape"]),
                    "deleted_rows": info["deleted_rows"],
                    "bytes_on_disk": info["file_bytes"],
                    "segments": info["segments"],
                    "attrs": _attrs(store, name),
                    "last_modified": _dt.datetime.fromtimestamp(
                        info["last_modified"] / 1e6, tz=_dt.timezone.utc
                    ).isoformat(timespec="seconds"),
                }
            )
        return rows
    finally:
        store.close()


def _table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[str(r[c]) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def cmd_info(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if target.is_file():
        info = get_package_info(target)
        if args.json:
            print(json.dumps(info, indent=2))
        else:
            print(
                f"{target}: .npkg version {info['version']}, {info['compression_name']}, "
                f"{info['file_count']} files, {_human(info['total_original_size'])} → "
                f"{_human(info['total_compressed_size'])} ({info['compression_ratio']:.1%})"
            )
            print(_table(info["files"], ["name", "original_size", "actual_size"]))
        return 0
    store, at = cli_history.split_version(args.target)
    if at is not None:
        rows = cli_history.versioned_rows(_existing_store(store), at)
        if args.json:
            print(json.dumps({"store": store, "version": at, "arrays": rows}, indent=2))
        else:
            for r in rows:
                r["shape"] = str(tuple(r["shape"]))
            print(_table(rows, ["name", "dtype", "shape"]) if rows else f"{target}: no arrays")
        return 0
    if not target.exists():
        raise _Failure(f"{target}: no such store or package")
    rows = _store_rows(target)
    if args.json:
        print(json.dumps({"store": str(target), "arrays": rows}, indent=2))
    else:
        for r in rows:
            r["shape"] = str(tuple(r["shape"]))
            r["bytes_on_disk"] = _human(r["bytes_on_disk"])
        columns = ["name", "dtype", "shape", "deleted_rows", "bytes_on_disk", "last_modified"]
        print(_table(rows, columns) if rows else f"{target}: no arrays")
        for r in rows:
            if r["attrs"]:
                print(f"{r['name']} attrs: {json.dumps(r['attrs'], ensure_ascii=False)}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    store, at = cli_history.split_version(args.store)

    def run(source: Any) -> Path:
        return pack(
            source,
            args.output,
            compression=not args.no_compress,
            overwrite=args.overwrite,
            level=args.level,
            shuffle=args.shuffle,
            progress=_progress(args, "pack"),
        )

    if at is None:
        out = run(args.store)
    else:
        with cli_history.snapshot_at(_existing_store(store), at) as snap:
            out = run(snap)
    if not args.quiet:
        print(out)
    return 0


def cmd_unpack(args: argparse.Namespace) -> int:
    out = unpack(
        args.package,
        args.output,
        overwrite=args.overwrite,
        verify=not args.no_verify,
        progress=_progress(args, "unpack"),
    )
    if not args.quiet:
        print(out)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if not target.exists():
        raise _Failure(f"{target}: no such store or package")
    try:
        problems, notes = _core.verify(str(target))
    except (ValueError, RuntimeError) as exc:
        problems, notes = [str(exc)], []
    for n in notes:
        if not args.quiet:
            print(f"note: {n}")
    for p in problems:
        print(f"problem: {p}")
    if not problems and not args.quiet:
        print(f"{target}: ok")
    return 1 if problems else 0


def _split_array(spec: str) -> tuple[Path, str | None]:
    """``store.npk:name`` (or ``store.npk@VERSION:name``) → (store, name); anything else →
    (path, None)."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and Path(cli_history.split_version(head)[0]).is_dir():
        return Path(head), tail
    return Path(spec), None


def cmd_convert(args: argparse.Namespace) -> int:
    src_spec, src_name = _split_array(args.src)
    store, at = cli_history.split_version(str(src_spec))
    if at is not None:
        with cli_history.snapshot_at(_existing_store(store), at) as snap:
            return _convert(args, snap, Path(store), src_name)
    return _convert(args, None, src_spec, src_name)


def _convert(
    args: argparse.Namespace, snap: Snapshot | None, src: Path, src_name: str | None
) -> int:
    from . import io as npio  # conversions are an optional layer

    dst = Path(args.dst)
    importers: dict[str, Callable[..., Any]] = {
        ".npy": npio.from_npy, ".npz": npio.from_npy, ".csv": npio.from_csv,
        ".txt": npio.from_txt, ".parquet": npio.from_parquet, ".feather": npio.from_feather,
        ".h5": npio.from_hdf5, ".hdf5": npio.from_hdf5, ".zarr": npio.from_zarr,
        ".safetensors": npio.from_safetensors_file, ".pt": npio.from_pt, ".pth": npio.from_pt,
    }  # fmt: skip
    exporters: dict[str, Callable[..., Any]] = {
        ".npy": npio.to_npy, ".npz": npio.to_npy, ".csv": npio.to_csv, ".txt": npio.to_txt,
        ".parquet": npio.to_parquet, ".feather": npio.to_feather, ".h5": npio.to_hdf5,
        ".hdf5": npio.to_hdf5, ".zarr": npio.to_zarr,
        ".safetensors": npio.to_safetensors_file, ".pt": npio.to_pt, ".pth": npio.to_pt,
    }  # fmt: skip
    if src.is_dir() and (src / "metadata.npkm").is_file():
        fn = exporters.get(dst.suffix.lower())
        if fn is None:
            raise _Failure(f"{dst}: unknown output format {dst.suffix!r}")
        many = fn in (npio.to_npy, npio.to_hdf5, npio.to_zarr, npio.to_safetensors_file, npio.to_pt)
        name = src_name or args.name
        source = snap if snap is not None else str(src)
        if many:
            fn(source, str(dst), array_names=[name] if name else None)
        else:
            fn(source, str(dst), array_name=name)
    else:
        fn = importers.get(src.suffix.lower())
        if fn is None:
            raise _Failure(f"{src}: unknown input format {src.suffix!r}")
        named = (npio.from_npy, npio.from_csv, npio.from_txt, npio.from_parquet, npio.from_feather)
        if fn in named:
            fn(str(src), str(dst), array_name=args.name)
        else:
            fn(str(src), str(dst))
    if not args.quiet:
        print(dst)
    return 0


def _existing_store(path: str) -> str:
    """``path`` if it is a store; a failure otherwise (instead of creating an empty one)."""
    if not (Path(path) / "metadata.npkm").is_file():
        raise _Failure(f"{path}: not a NumPack store (no metadata.npkm)")
    return path


def cmd_compact(args: argparse.Namespace) -> int:
    with NumPack(_existing_store(args.store)) as npk:
        for name in args.names or npk.get_member_list():
            npk.update(name)
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    with NumPack(_existing_store(args.store)) as npk:
        missing = [n for n in args.names if not npk.has_array(n)]
        if missing:
            raise _Failure(f"{args.store}: no array named {', '.join(map(repr, missing))}")
        npk.drop(list(args.names))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="numpack",
        description="Look inside, check, convert and move numpack stores.",
        epilog="\n".join(f"  {v}" for v in EXAMPLES.values()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress or chatter")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"example:\n  {EXAMPLES[name]}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        # SUPPRESS: a -q given before the command is not reset by the subcommand's default.
        p.add_argument(
            "-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
            help="no progress or chatter",
        )  # fmt: skip
        return p

    p = add("info", "show the arrays of a store, or the members of a .npkg package")
    p.add_argument("target", help="store directory or .npkg file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = add("pack", "pack a store into one .npkg file")
    p.add_argument("store")
    p.add_argument("-o", "--output", help="package file (default: STORE.npkg)")
    p.add_argument("--no-compress", action="store_true", help="store members raw")
    p.add_argument("--level", type=int, default=3, help="zstd level (default 3)")
    p.add_argument("--shuffle", action="store_true", help="byte-shuffle (better ratio, v3)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing package")
    p.set_defaults(func=cmd_pack)

    p = add("unpack", "unpack a .npkg file into a store directory")
    p.add_argument("package")
    p.add_argument("-o", "--output", help="store directory (default: from the file name)")
    p.add_argument("--no-verify", action="store_true", help="skip the checksum")
    p.add_argument("--overwrite", action="store_true", help="replace an existing store")
    p.set_defaults(func=cmd_unpack)

    p = add("verify", "check every invariant of a store or a package")
    p.add_argument("target", help="store directory or .npkg file")
    p.set_defaults(func=cmd_verify)

    p = add("convert", "convert between numpack and other formats, by file suffix")
    p.add_argument("src", help="input file, or STORE:NAME to export one array")
    p.add_argument("dst", help="output file or store")
    p.add_argument("--name", help="array name (import: default the file stem)")
    p.set_defaults(func=cmd_convert)

    p = add("compact", "physically remove deleted rows (all arrays, or the named ones)")
    p.add_argument("store")
    p.add_argument("names", nargs="*")
    p.set_defaults(func=cmd_compact)

    p = add("drop", "delete whole arrays")
    p.add_argument("store")
    p.add_argument("names", nargs="+")
    p.set_defaults(func=cmd_drop)
    cli_history.register(add, _existing_store)
    cli_index.register(add, _existing_store)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader went away (`numpack info ... | head`): not an error.
        sys.stdout = open(os.devnull, "w")  # silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("numpack: interrupted", file=sys.stderr)
        return 130
    except (_Failure, OSError, ValueError, TypeError, KeyError, RuntimeError, ImportError) as exc:
        message = str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc)
        # The library's hints name its keyword; on the command line it is the flag.
        message = message.replace("pass overwrite=True", "pass --overwrite")
        print(f"numpack: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
