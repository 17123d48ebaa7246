"""Type stub of the native module ``numpack._core`` (the PyO3 bindings of the engine crate).

The Python package (``numpack.numpack``, ``numpack.lazy_array``, ``numpack.batch``) is the
public layer; it normalises arguments and calls these primitives.  Every primitive works on
*logical* rows (rows deleted through the bitmap are invisible) unless it says "physical".

Arrays passed in must already be C-contiguous, native (little-endian) byte order, and one of
the 14 supported dtypes; the Python layer converts.  Rows are given as a 1-d ``int64``
array (negative values count from the logical end), a 1-d ``bool`` mask or a ``slice``, and
resolved by the engine against the array as the call finds it.  Errors are raised as the classes of
``numpack.exceptions`` (``ArrayNotFoundError``, ``IndexOutOfRangeError``,
``CorruptStoreError``) or as built-in ``ValueError`` / ``TypeError`` / ``OSError``.
The GIL is released during all file I/O.
"""

from typing import Any, final

import numpy as np
import numpy.typing as npt
from typing_extensions import Self

__version__: str

_Rows = npt.NDArray[np.int64] | npt.NDArray[np.bool_] | slice
"""Logical rows: indexes (negative from the end), a mask over every row, or a slice."""

@final
class Store:
    """An open store directory (created if missing).  Several ``Store`` objects, in threads
    or processes, may open the same directory; every mutation takes the store lock and is
    all-or-nothing under a crash; reads see other handles' committed changes."""

    def __new__(cls, path: str) -> Self: ...
    @property
    def path(self) -> str:
        """The store directory as an absolute path."""
    def close(self) -> None:
        """Make everything written through this handle durable (fsync data, metadata,
        directory; free when nothing was written) and release it.  Idempotent; later calls on
        this object raise ``ValueError``."""
    def sync(self) -> None:
        """fsync data files, metadata and the directory."""
    # --- versions ------------------------------------------------------------------------
    def snapshot(self, version: int | None = None) -> Snapshot:
        """Pin ``version`` (the current one when ``None``) for reading."""
    def version(self) -> int:
        """The current version number."""
    def versions(self) -> list[tuple[int, int, str, list[str], int, list[str], bool]]:
        """``(version, time_us, op, arrays, bytes_kept, tags, aborted)`` of every readable
        version, oldest first."""
    def tag(self, name: str, version: int | None = None) -> int:
        """Name a version; returns it."""
    def untag(self, name: str) -> None:
        """Remove a tag."""
    def tags(self) -> list[tuple[str, int]]:
        """``(tag, version)`` pairs."""
    def tagged(self, name: str) -> int:
        """The version a tag names."""
    def set_history(self, keep_last: int) -> None:
        """Keep the last ``keep_last`` versions (persisted)."""
    def history_setting(self) -> int:
        """The ``keep_last`` setting."""
    def gc(
        self, keep_last: int | None = None, older_than_us: int | None = None
    ) -> tuple[int, int, int]:
        """Collect history: ``(versions_removed, bytes_freed, oldest)``."""
    def restore(self, version: int) -> int:
        """A new commit equal to ``version``; returns the new version."""
    # --- writing -------------------------------------------------------------------------
    def save(self, arrays: list[tuple[str, npt.NDArray[Any]]]) -> None:
        """Create or replace each array whole (new shape/dtype allowed, bitmap removed)."""
    def append(self, arrays: list[tuple[str, npt.NDArray[Any]]]) -> None:
        """Append rows to every ``(name, array)`` in one commit (all arrays grow or none).
        Missing → ArrayNotFoundError; ndim/trailing mismatch → ValueError; dtype mismatch →
        TypeError; 0-d array stored → ValueError."""
    def replace(self, items: list[tuple[str, npt.NDArray[Any], _Rows]]) -> None:
        """Overwrite the logical rows of every ``(name, array, rows)`` at once, resolved under
        the store lock (``array.shape[0]`` must be the number of rows or 1 to broadcast; one
        row may leave out the row axis).  Out of range → IndexOutOfRangeError; wrong count,
        ndim or width → ValueError; dtype → TypeError."""
    def drop_rows(self, items: list[tuple[str, _Rows]]) -> None:
        """Mark the logical rows of every ``(name, rows)`` deleted in one commit, resolved
        under the store lock (duplicates fine).  Out of range → IndexOutOfRangeError.
        A drop that deletes the last rows of an array removes the array."""
    def drop_arrays(self, names: list[str]) -> None:
        """Delete whole arrays; names that do not exist are skipped."""
    def compact(self, name: str) -> None:
        """Physically remove deleted rows (no-op without any); missing → ArrayNotFoundError."""
    def clone(self, source: str, target: str) -> None:
        """Deep compacted copy; missing source → ArrayNotFoundError; target exists → ValueError."""
    def reset(self) -> None:
        """Remove every array."""
    # --- reading -------------------------------------------------------------------------
    def load(self, name: str) -> npt.NDArray[Any]:
        """A new, writable, owning C-contiguous array of the logical rows (0-d arrays too)."""
    def getitem(self, name: str, rows: _Rows) -> npt.NDArray[Any]:
        """The selected rows of one version of the array, in order, row axis kept."""
    def read_range(self, name: str, start: int, stop: int) -> npt.NDArray[Any]:
        """Logical rows ``start..stop``, clipped as ``slice(start, stop)`` would be."""
    def view(self, name: str) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64] | None]:
        """A read-only ndarray over a mmap of the data file with the *physical* shape, and the
        physical row numbers of the logical rows (``None`` when no row is deleted).  The
        mapping lives as long as the returned array does, whatever happens to the store.
        The array's ``base`` is a ``MappedFile`` (``advise`` works on it) unless it is empty."""
    def row_source(self, name: str) -> RowSource:
        """The rows of the current version of ``name``, for streaming."""
    def writable_view(self, name: str) -> tuple[npt.NDArray[Any], MappedFile]:
        """A writable ndarray over a shared mmap of the data file (array must have no deleted
        rows: compact first).  Edits reach the file; ``MappedFile.flush()`` msyncs them."""
    # --- queries -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Array names, sorted."""
    def has(self, name: str) -> bool: ...
    def shape(self, name: str) -> tuple[int, ...]:
        """Logical shape."""
    def dtype(self, name: str) -> np.dtype[Any]: ...
    def describe(self, name: str) -> tuple[np.dtype[Any], tuple[int, ...]]:
        """``(dtype, logical shape)`` in one call, without mapping the data."""
    def info(self, name: str) -> dict[str, Any]:
        """``{'shape': [physical dims], 'logical_shape': [...], 'data_file': str,
        'last_modified': int (µs), 'size_bytes': int, 'dtype': 'Float32', 'dtype_code': int,
        'deleted_rows': int, 'file_bytes': int,
        'segments': int (0: one data file)}``."""
    def attrs(self, name: str) -> str:
        """The attributes of array ``name`` as JSON text of an object."""
    def update_attrs(self, name: str, set: str, remove: list[str], replace: bool) -> None:
        """Sets the keys of ``set`` (JSON object text), removes ``remove``; or with
        ``replace`` makes the attributes exactly ``set``. One commit."""
    def modify_time(self, name: str) -> int | None: ...
    def total_size(self) -> int: ...
    # --- streaming imports (numpack.io) ----------------------------------------------------
    def array_writer(self, name: str, dtype: np.dtype[Any]) -> ArrayWriter:
        """Start writing a new array ``name`` into a temporary file of the store; nothing is
        visible until :meth:`commit_writers`.  Invalid name → ValueError."""
    def commit_writers(
        self, writers: list[tuple[ArrayWriter, list[int]]], only_these: bool = False
    ) -> None:
        """Make every ``(writer, shape)`` appear at once (each shape must account for exactly
        the bytes written), replacing arrays of the same names whole; with ``only_these``,
        every other array is removed in the same commit.  All or nothing: on error no array
        changes and the temporary files are removed."""

@final
class Snapshot:
    """One pinned version of a store; ``close()`` releases it."""

    @property
    def version(self) -> int:
        """The version it reads."""
    @property
    def closed(self) -> bool:
        """True once released."""
    def names(self) -> list[str]:
        """Array names at the version."""
    def has(self, name: str) -> bool:
        """Whether the array existed at the version."""
    def shape(self, name: str) -> list[int]:
        """Logical shape at the version."""
    def dtype(self, name: str) -> np.dtype[Any]:
        """The dtype at the version."""
    def load(self, name: str) -> npt.NDArray[Any]:
        """The whole array at the version."""
    def getitem(self, name: str, rows: _Rows) -> npt.NDArray[Any]:
        """Selected logical rows at the version."""
    def read_range(self, name: str, start: int, stop: int) -> npt.NDArray[Any]:
        """Logical rows ``start..stop`` at the version."""
    def close(self) -> None:
        """Release the version."""

@final
class RowSource:
    """The rows of one array version, pinned until released (independent of the store handle)."""

    @property
    def rows(self) -> int:
        """Physical rows."""
    def layout(self) -> tuple[np.dtype[Any], tuple[int, ...], npt.NDArray[np.int64] | None]:
        """``(dtype, physical shape, active physical rows or None)``, mapping nothing."""
    def view(self) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64] | None]:
        """``(physical rows as a read-only mapped array, active physical rows or None)``."""
    def take(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Physical rows ``start..stop`` as a writable private copy-on-write mapping."""
    def read(self, start: int, stop: int) -> npt.NDArray[Any]:
        """Logical rows ``start..stop`` of the pinned version, as a new array."""
    def release(self) -> None:
        """Let the pinned version go."""

@final
class ArrayWriter:
    """A new array being written batch by batch (from ``Store.array_writer``); its
    temporary file is removed when the writer is aborted or dropped uncommitted."""

    @property
    def name(self) -> str: ...
    @property
    def dtype(self) -> np.dtype[Any]: ...
    @property
    def nbytes(self) -> int:
        """Bytes written so far."""
    def write(self, array: npt.NDArray[Any]) -> None:
        """Append the elements of a C-contiguous, native-order array of the writer's dtype
        (another dtype → TypeError)."""
    def copy_from(self, path: str, offset: int, length: int) -> None:
        """Append ``length`` bytes of the file at ``path`` from ``offset`` (a kernel copy;
        ``length`` must be whole elements)."""
    def set_attrs(self, json: str) -> None:
        """Attributes (JSON object text) the array gets at its commit, replacing its old ones."""
    def abort(self) -> None:
        """Abandon the array and remove its temporary file.  Idempotent."""

@final
class MappedFile:
    """Owner of a writable shared mapping handed out by ``Store.writable_view``."""

    def flush(self) -> None:
        """msync the mapping to the file."""
    def advise(self, hint: str) -> None:
        """Kernel access hint for the mapping: 'sequential', 'random' or 'willneed'."""

def dtype_code(dtype: np.dtype[Any]) -> int:
    """The format's dtype code (0..13) of a NumPy dtype; ValueError('Unsupported dtype: <name>')."""

def preallocate(fd: int, offset: int, length: int) -> None:
    """Reserve the blocks of ``offset..offset+length`` of an open file (best effort, size kept)."""

# --- staged writes (numpack.dask, numpack.ray) -------------------------------------------
def stage_begin(store: Store, name: str, mode: str, dtype: np.dtype[Any], shape: list[int]) -> str:
    """Begin a stage of ``shape`` rows of array ``name`` (mode 'create', 'overwrite' or
    'append'); its token."""

def stage_write(store: Store, token: str, start: int, rows: np.ndarray[Any, Any]) -> None:
    """Write ``rows`` at row ``start`` of a stage (from any process)."""

def stage_commit(store: Store, token: str) -> None:
    """Make every staged row appear at once."""

def stage_abort(store: Store, token: str) -> None:
    """Drop a stage."""

# --- .npkg packages ------------------------------------------------------------------------
def pack(
    source: str,
    target: str,
    compression: bool = True,
    level: int = 3,
    shuffle: bool = False,
    progress: Any = None,
) -> None:
    """Pack a store into a package file (temp + fsync + rename; store lock held)."""

def unpack(
    source: str, target: str, overwrite: bool = False, verify: bool = True, progress: Any = None
) -> None:
    """Unpack a package into a store directory (temp directory renamed into place)."""

def package_info(source: str) -> dict[str, Any]:
    """``{'version', 'compression', 'checksum', 'files': [{'name', 'original_size',
    'compressed_size', 'actual_size', 'shuffle'}]}``."""

def verify(source: str) -> tuple[list[str], list[str]]:
    """Check a package file or a store directory: ``(problems, notes)``."""

# --- vector search (dtype policy, dimensions and k in the engine: numpack::vector) -----------
def simd_capabilities() -> str: ...
def vector_scores(
    queries: npt.NDArray[Any], candidates: npt.NDArray[Any], metric_name: str
) -> npt.NDArray[np.float64]:
    """``(m, n)`` float64 scores; both 2-d C-contiguous, of dtypes the engine's promotion table
    searches together (else ``DtypeMismatchError``)."""

def vector_top_k(
    queries: npt.NDArray[Any], candidates: npt.NDArray[Any], metric_name: str, k: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
    """Per query the best ``min(k, n)``: ``(m, k')`` indices and exact scores, best first
    (ties by lower index)."""

def vector_stream_top_k(
    source: str | Snapshot,
    name: str,
    queries_arr: npt.NDArray[Any],
    metric_name: str,
    k: int,
    batch: int,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64]]:
    """Top-k streamed from array ``name`` of the store at a path, or of a snapshot."""

def vector_stream_scores(
    source: str | Snapshot, name: str, queries_arr: npt.NDArray[Any], metric_name: str, batch: int
) -> npt.NDArray[np.float64]:
    """``(m, rows)`` scores streamed from array ``name`` of a store or a snapshot."""

# --- CSV / text files (policy and argument normalisation in numpack.io.csv) ---------------
@final
class CsvReader:
    """A CSV or text file parsed block by block (text blocks of at most ``block_bytes``, cut
    at line boundaries, parsed in parallel). Errors are ``ValueError`` naming the file, the
    line (1-based, every physical line) and the column."""

    def __new__(
        cls,
        path: str,
        dtype: np.dtype[Any],
        delimiter: str | None = ...,  # ","
        comments: list[str] = ...,  # ["#"]
        quote: str | None = ...,  # '"'
        skip_lines: int = 0,
        header_lines: int = 0,
        max_rows: int | None = None,
        usecols: list[int] | None = None,
        block_bytes: int = ...,
    ) -> Self: ...
    @property
    def width(self) -> int | None:
        """Values per row, once the first row was read."""
    @property
    def rows(self) -> int:
        """_Rows read so far."""
    @property
    def position(self) -> int:
        """Bytes of the file consumed so far."""
    def __iter__(self) -> CsvReader: ...
    def __next__(self) -> npt.NDArray[np.uint8]:
        """The next block's rows as element bytes (view as the dtype, ``width`` per row)."""
    def read_into(self, writer: ArrayWriter) -> int | None:
        """Parse the next block straight into ``writer``; its row count, ``None`` at the end."""

@final
class CsvWriter:
    """_Rows of ``width`` values of ``dtype`` formatted in parallel into a new file at
    ``path``: the shortest round-trip text, or the printf row format ``fmt``."""

    def __new__(
        cls,
        path: str,
        dtype: np.dtype[Any],
        width: int,
        delimiter: str = ",",
        newline: str = "\n",
        fmt: str | None = None,
        label: str = "array",
    ) -> Self: ...
    def write_raw(self, data: bytes) -> None:
        """Write ``data`` as it is (a header or footer)."""
    def write(self, array: npt.NDArray[Any], rows: npt.NDArray[np.int64] | None = None) -> None:
        """Format the rows of a C-contiguous array (or only the physical rows ``rows``)."""
    def write_blank(self, n: int) -> None:
        """``n`` empty rows (an array with no values per row)."""
    def close(self) -> None:
        """Flush and close the file (idempotent)."""

def csv_format_columns(fmt: str) -> int | None:
    """Conversions in a printf row format, or ``None`` when the Rust writer cannot apply it."""

def index_create(
    store: Store,
    name: str,
    metric_name: str,
    kind: str = "ivf_flat",
    nlist: int | None = None,
    m: int | None = None,
    train_rows: int | None = None,
    iters: int | None = None,
    seed: int | None = None,
) -> None:
    """Builds an index of array ``name`` (replacing any it has)."""

def index_rebuild(
    store: Store,
    name: str,
    nlist: int | None = None,
    train_rows: int | None = None,
    iters: int | None = None,
    seed: int | None = None,
) -> None:
    """Trains the index of ``name`` again (same metric; same lists unless ``nlist``)."""

def index_drop(store: Store, name: str) -> bool:
    """Removes the index of ``name``; whether it had one."""

def index_info(store: Store, name: str) -> dict[str, Any] | None:
    """What the index of ``name`` is (``None`` without one)."""

def index_search(
    source: Store | str | Snapshot,
    name: str,
    queries_arr: npt.NDArray[Any],
    k: int,
    metric_name: str | None = None,
    nprobe: int | None = None,
    refine: int | None = None,
    exact: bool = False,
    batch: int | None = None,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.float64], bool]:
    """The ``k`` best logical rows per query, through a current index of the asked metric
    (else exactly): ``(indices, scores, indexed)``."""
