"""Built-in datasets: find their files, check them, download them if needed, split them.

Search order for a dataset's files (four gzipped IDX files, or CIFAR-10's one archive):

1. an explicit directory (``--data-dir`` or ``TUNEBOOK_DATA``) — used alone when given;
2. the user cache, ``$XDG_CACHE_HOME/tunebook/<dataset>`` (default ``~/.cache/...``);
3. Debian's ``/usr/share/datasets/<dataset>``, where a package holds it
   (``dataset-fashion-mnist``);
4. a download from the dataset's official location, then its mirrors, into the cache
   (``TUNEBOOK_MIRROR=URL`` replaces them all: files come from ``URL/<dataset>/<file>``,
   for a site's own copy behind a firewall).

Every file is checked before use: its SHA-256 (of the file as published, or of the
decompressed IDX bytes where a repackaged copy is as good: Fashion-MNIST), gzip
integrity, IDX magic number, shape, label range and, for a dataset that is not balanced,
its rows per class. A bad file is a :class:`DataError` that names it, never a crash deep
inside numpy; a download is checked before it is put in place, so a bad one leaves nothing.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import DATASETS, DatasetInfo, SourceFile, validation_count
from .errors import DataError
from .fileid import identity
from .splits import split_indices, strata  # noqa: F401  (split_indices: named here since the first release)

_MAGIC = {1: 0x0801, 3: 0x0803}  # unsigned-byte IDX files with 1 or 3 dimensions


@dataclass(frozen=True, eq=False)
class Dataset:
    """Arrays for one study: float32 features (images in [0, 1], flattened), int64 labels
    — or, for a regression target, float32 values standardised by the training split's
    mean and standard deviation (``DatasetInfo.target_mean``, ``target_sd``)."""

    name: str
    validation: float | str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # the folder the files were read from

    @property
    def val_is_test(self) -> bool:
        return self.validation == "test"

    @property
    def n_classes(self) -> int:
        return DATASETS[self.name].n_classes


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tunebook"


def candidate_dirs(info: DatasetInfo, data_dir: str | Path | None = None) -> list[tuple[str, Path]]:
    """Where to look, in order, each with a label for error messages."""
    explicit = data_dir or os.environ.get("TUNEBOOK_DATA")
    if explicit:
        return [("explicit (--data-dir / TUNEBOOK_DATA)", Path(explicit))]
    places = [("user cache", cache_dir() / info.name)]
    return places + ([("Debian package", Path(info.debian_dir))] if info.debian_dir else [])


def _has_all(info: DatasetInfo, folder: Path) -> bool:
    return all((folder / f.name).is_file() for f in info.files.values())


def locate(info: DatasetInfo, data_dir: str | Path | None = None,
           mirrors: tuple[str, ...] | None = None, download: bool = True,
           say: Callable[[str], None] | None = None) -> Path:
    """The folder holding all of a dataset's files; downloads into the cache as a last resort
    (``say`` is told of each download; by default a line on stderr)."""
    places = candidate_dirs(info, data_dir)
    found = where_found(info, data_dir)
    if found is not None:
        return found
    lines = [f"{label}: {folder}" for label, folder in places]
    if data_dir or os.environ.get("TUNEBOOK_DATA"):
        missing = [f.name for f in info.files.values() if not (places[0][1] / f.name).is_file()]
        raise DataError(f"{info.name}: {places[0][1]} lacks {', '.join(missing)}")
    reason = "download disabled"
    if download:
        target = cache_dir() / info.name
        try:
            return fetch(info, target, mirrors or mirrors_of(info), say=say)
        except DataError as exc:
            reason = str(exc)
    names = ", ".join(f.name for f in info.files.values())
    raise DataError(
        f"{info.name}: dataset not found. Looked in:\n  " + "\n  ".join(lines)
        + f"\nDownload failed: {reason}\n"
        + (f"Install it with `apt-get install {info.debian_package}` (Debian), or put " if info.debian_package
           else f"Download it from {info.homepage or info.mirrors[0]} on a machine that can, and put ")
        + f"the file{'s' if len(info.files) > 1 else ''} ({names}) in a folder and pass --data-dir or set "
        "TUNEBOOK_DATA (or copy them into the user cache above).")


def mirrors_of(info: DatasetInfo) -> tuple[str, ...]:
    """Where a dataset downloads from: ``$TUNEBOOK_MIRROR/<dataset>/`` alone when it is set,
    else its official location and mirrors."""
    site = os.environ.get("TUNEBOOK_MIRROR")
    return (site.rstrip("/") + f"/{info.name}/",) if site else info.mirrors


def where_found(info: DatasetInfo, data_dir: str | Path | None = None) -> Path | None:
    """The folder that holds all of a dataset's files (unchecked), or None: nothing is fetched."""
    return next((folder for _, folder in candidate_dirs(info, data_dir) if _has_all(info, folder)), None)


def _stderr(line: str) -> None:
    print(f"tunebook: {line}", file=sys.stderr, flush=True)


def fetch(info: DatasetInfo, target: Path, mirrors: tuple[str, ...], timeout: float = 30.0,
          say: Callable[[str], None] | None = None) -> Path:
    """Download the files into ``target``, each verified before it is put in place; a file
    already there is kept (it is checked when it is read)."""
    say = say or _stderr
    made = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        _fetch_into(info, target, mirrors, timeout, say)
    except DataError:
        if made and not any(target.iterdir()):
            target.rmdir()  # a download that kept nothing leaves no folder either
        raise
    return target


def _fetch_into(info: DatasetInfo, target: Path, mirrors: tuple[str, ...], timeout: float,
                say: Callable[[str], None]) -> None:
    for f in info.files.values():
        if (target / f.name).is_file():
            continue
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + f.name
            say(f"downloading {url}" + (f" ({f.size / 1e6:.1f} MB)" if f.size else "") + f" into {target}")
            try:
                _download_one(url, target / f.name, f, timeout)
                break
            except DataError as exc:
                say(f"  failed: {exc}")
                errors.append(str(exc))
        else:
            raise DataError("; ".join(errors))


def _most_bytes(expected: SourceFile) -> int:
    """The most a download of ``expected`` may be: its published size, or, not knowing it,
    the decompressed IDX size plus a margin (a compressed file is never larger)."""
    return expected.size or idx_bytes(expected) + (1 << 20)


def _download_one(url: str, dest: Path, expected: SourceFile, timeout: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    got, most = 0, _most_bytes(expected)
                    while chunk := resp.read(1 << 20):
                        got += len(chunk)
                        if got > most:
                            raise DataError(f"{url}: more than {most} bytes, larger than the file can be; "
                                            "not kept")
                        digest.update(chunk)
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        if expected.archive_sha256:
            if digest.hexdigest() != expected.archive_sha256:
                raise DataError(f"{url}: checksum mismatch (sha256 of the file is {digest.hexdigest()}, expected "
                                f"{expected.archive_sha256}); the file was not kept")
        else:
            got_digest = _sha256_of_gzip(Path(tmp), label=url, limit=idx_bytes(expected))
            if got_digest != expected.sha256:
                raise DataError(f"{url}: checksum mismatch (sha256 of the decompressed data is "
                                f"{got_digest}, expected {expected.sha256}); the file was not kept")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_archive(path: Path, expected: SourceFile) -> None:
    """The file as published: its SHA-256 (read in chunks), where one is known."""
    if not expected.archive_sha256:
        return
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None
    if digest.hexdigest() != expected.archive_sha256:
        raise DataError(f"{path}: checksum mismatch (sha256 of the file is {digest.hexdigest()}, expected "
                        f"{expected.archive_sha256}): not the published file; delete it to fetch it again")


def idx_bytes(expected: SourceFile) -> int:
    """The size of a decompressed IDX file of ``expected``'s shape: header and data."""
    return 4 + 4 * len(expected.shape) + int(np.prod(expected.shape))


def _read_gzip(path: Path, label: str | None = None, limit: int | None = None) -> bytes:
    """The decompressed bytes, read at most ``limit`` + 1 of them: a small archive that
    inflates to gigabytes (a gzip bomb) is refused while it is read, not after."""
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read() if limit is None else fh.read(limit + 1)
        if limit is not None and len(data) > limit:
            raise DataError(f"{label or path}: decompresses to more than the {limit} bytes this IDX file has; "
                            "not the dataset's file (delete it to re-fetch, or reinstall the dataset)")
        return data
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{label or path}: not a complete gzip file ({exc}); "
                        "delete it and run again to re-fetch, or reinstall the dataset") from None


def _sha256_of_gzip(path: Path, label: str | None = None, limit: int | None = None) -> str:
    return hashlib.sha256(_read_gzip(path, label, limit)).hexdigest()


def read_idx(path: Path, expected: SourceFile, n_classes: int | None = None) -> np.ndarray:
    """One IDX file as a uint8 array, after every check (its decompressed digest where one is
    known; the digest of the file as published is :func:`check_archive`'s)."""
    raw = _read_gzip(path, limit=idx_bytes(expected))
    ndim = len(expected.shape)
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, no complete header)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != _MAGIC[ndim]:
        raise DataError(f"{path}: bad IDX magic number 0x{magic:08x}, expected 0x{_MAGIC[ndim]:08x}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if dims != expected.shape:
        raise DataError(f"{path}: shape {dims}, expected {expected.shape}")
    if len(raw) != header + int(np.prod(dims)):
        raise DataError(f"{path}: truncated IDX file ({len(raw) - header} data bytes, "
                        f"expected {int(np.prod(dims))})")
    digest = hashlib.sha256(raw).hexdigest()
    if expected.sha256 and digest != expected.sha256:
        raise DataError(f"{path}: checksum mismatch (sha256 {digest}, expected {expected.sha256})")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    if n_classes is not None and arr.max() >= n_classes:
        raise DataError(f"{path}: label {int(arr.max())} out of range 0..{n_classes - 1}")
    return arr


#: CIFAR-10's binary version: five training batches and a test batch, each a run of
#: records of one label byte and 3 072 pixel bytes (1 024 red, 1 024 green, 1 024 blue).
_CIFAR_FOLDER = "cifar-10-batches-bin"
_CIFAR_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_CIFAR_TEST = "test_batch.bin"


def _read_cifar(path: Path, info: DatasetInfo) -> dict[str, np.ndarray]:
    """The batches of a CIFAR binary archive, read as a stream (one pass over the tar.gz)."""
    record = info.n_features + 1
    rows = {name: info.n_train // len(_CIFAR_TRAIN) for name in _CIFAR_TRAIN} | {_CIFAR_TEST: info.n_test}
    parts: dict[str, np.ndarray] = {}
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                name = member.name.removeprefix(_CIFAR_FOLDER + "/")
                if name not in rows or not member.isfile():
                    continue
                if member.size != rows[name] * record:
                    raise DataError(f"{path}: {member.name} has {member.size} bytes, expected {rows[name]} records "
                                    f"of {record} bytes")
                parts[name] = np.frombuffer(tar.extractfile(member).read(), dtype=np.uint8).reshape(rows[name], record)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a complete tar.gz archive ({exc}); delete it to fetch it again") from None
    missing = [f"{_CIFAR_FOLDER}/{n}" for n in rows if n not in parts]
    if missing:
        raise DataError(f"{path}: lacks {', '.join(missing)}")
    train = np.concatenate([parts[n] for n in _CIFAR_TRAIN])
    test = parts[_CIFAR_TEST]
    return {"train_images": train[:, 1:], "train_labels": train[:, 0],
            "test_images": test[:, 1:], "test_labels": test[:, 0]}


def _read_files(info: DatasetInfo, folder: Path) -> dict[str, np.ndarray]:
    """A built-in dataset's uint8 arrays by role, every file checked."""
    for f in info.files.values():
        check_archive(folder / f.name, f)
    if info.format == "cifar-binary":
        raw = _read_cifar(folder / info.files["archive"].name, info)
    else:
        raw = {role: read_idx(folder / f.name, f) for role, f in info.files.items()}
    for role in ("train_labels", "test_labels"):
        top = int(raw[role].max())
        if top >= info.n_classes:
            where = folder / info.files.get(role, next(iter(info.files.values()))).name
            raise DataError(f"{where}: label {top} out of range 0..{info.n_classes - 1}")
    if info.class_counts:
        counts = tuple(np.bincount(raw["train_labels"], minlength=info.n_classes).tolist())
        if counts != info.class_counts:
            raise DataError(f"{folder}: {info.name}'s training rows per class are {counts}, expected "
                            f"{info.class_counts}: not the published data")
    return raw


@functools.lru_cache(maxsize=2)
def _load_arrays(name: str, folder: str) -> dict[str, np.ndarray]:
    """A built-in dataset's checked arrays: images as flattened uint8 rows (made features
    by :func:`_features` once split), labels int64; read-only, cached."""
    info = DATASETS[name]
    out = {}
    for role, arr in _read_files(info, Path(folder)).items():
        arr = arr.reshape(arr.shape[0], -1) if role.endswith("images") else arr.astype(np.int64)
        arr.setflags(write=False)
        out[role] = arr
    return out


def _features(rows: np.ndarray) -> np.ndarray:
    """Image rows as float32 features in [0, 1] (a user's float features as they are).
    Rows are converted after the split has picked them, in place: a float copy of the
    whole set and then of the split's rows cost a process a second of fresh memory."""
    if rows.dtype != np.uint8:
        return rows
    out = rows.astype(np.float32)
    np.divide(out, np.float32(255.0), out=out)  # x / 255.0 to the bit
    return out


def check_available(name: str, data_dir: str | Path | None = None, load: bool = True) -> Path:
    """Find (or download) a dataset's files and check every one of them; a DataError names
    what is wrong. Runs before a study writes anything; the arrays stay cached. A user's
    dataset is in memory already (read and checked when its study file was).

    ``load=False`` (a driver whose workers read the data themselves): where every file has
    a published SHA-256, the digests are the check — a file that matches is the published
    one — and nothing is decompressed here; other files are read and checked whole, as with
    ``load``, but not kept as arrays."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    info = DATASETS[name]
    if not info.builtin:
        return _user_arrays(name)[1]
    folder = locate(info, data_dir)
    if not load:
        ident = identity(*(folder / f.name for f in info.files.values()))
        if ident is not None and _CHECKED.get((name, str(folder))) == (ident, info):
            return folder  # checked by this process already: the same files, the same expectations
        if all(f.archive_sha256 for f in info.files.values()):
            for f in info.files.values():
                check_archive(folder / f.name, f)
        else:  # every check, without the arrays this process will not train on
            _read_files(info, folder)
        if ident is not None:
            _CHECKED[(name, str(folder))] = (ident, info)
        return folder
    _load_arrays(name, str(folder))
    return folder


#: (dataset, folder) -> the identity of its files when this process last checked them whole,
#: and what they were checked against (``check_available(load=False)``: a programme checks
#: its dataset once per study).
_CHECKED: dict[tuple[str, str], tuple] = {}


def fetch_dataset(name: str, data_dir: str | Path | None = None) -> Path:
    """Make a built-in dataset ready: find it (or download it into the user cache) and check
    every file; returns its folder. ``tunebook datasets NAME --fetch`` from the shell."""
    if name not in DATASETS or not DATASETS[name].builtin:
        raise DataError(f"unknown built-in dataset {name!r} (built in: "
                        f"{', '.join(n for n, d in DATASETS.items() if d.builtin)})")
    return check_available(name, data_dir)


def _user_arrays(name: str) -> tuple[dict[str, np.ndarray], Path]:
    """A registered user dataset's arrays, by the roles of a built-in one's, and its origin."""
    from .userdata import registered

    arrays = registered(name)
    if arrays is None:
        info = DATASETS[name]
        raise DataError(f"{name}: the data of this study ({info.origin or 'arrays'}) is not loaded in this "
                        "process: run the study from its study file (or register the arrays with "
                        "tunebook.Dataset.from_arrays) first")
    return ({"train_images": arrays.x_train, "train_labels": arrays.y_train, "test_images": arrays.x_test,
             "test_labels": arrays.y_test}, Path(DATASETS[name].origin or "."))


def load_dataset(name: str = "fashion-mnist", validation: float | str = 0.1, split_seed: int = 0,
                 train_subset: int = 0, data_dir: str | Path | None = None,
                 mirrors: tuple[str, ...] | None = None) -> Dataset:
    """Find, check and split a dataset (see the module docstring for the search order)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    info = DATASETS[name]
    if info.builtin:
        folder = locate(info, data_dir, mirrors)
        a = _load_arrays(name, str(folder))
    else:
        a, folder = _user_arrays(name)
    x, y = a["train_images"], a["train_labels"]
    x_test = _features(a["test_images"])
    if validation == "test":
        train_idx = np.arange(len(y))
        x_val, y_val = x_test, a["test_labels"]
    else:
        labels, n_strata = strata(y, info.n_classes)
        train_idx, val_idx = split_indices(labels, float(validation), split_seed, n_strata)
        assert len(val_idx) == validation_count(info, float(validation))
        x_val, y_val = _features(x[val_idx]), y[val_idx]
    if train_subset and train_subset < len(train_idx):
        rng = np.random.default_rng(split_seed + 1)
        train_idx = np.sort(rng.permutation(train_idx)[:train_subset])
    return Dataset(name=name, validation=validation, x_train=_features(x[train_idx]), y_train=y[train_idx],
                   x_val=x_val, y_val=y_val, x_test=x_test, y_test=a["test_labels"],
                   source=str(folder))
