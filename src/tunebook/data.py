"""Datasets: find the IDX files, check them, download them if needed, split them.

Search order for the four gzipped IDX files of a dataset:

1. an explicit directory (``--data-dir`` or ``TUNEBOOK_DATA``) — used alone when given;
2. the user cache, ``$XDG_CACHE_HOME/tunebook/<dataset>`` (default ``~/.cache/...``);
3. Debian's ``/usr/share/datasets/<dataset>`` (package ``dataset-fashion-mnist``);
4. a download from the dataset's official mirror into the cache.

Every file is checked before use: gzip integrity, IDX magic number, shape, label range
and the SHA-256 of its decompressed bytes. A bad file is a :class:`DataError` that names
it, never a crash deep inside numpy.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import DATASETS, DatasetInfo, IdxFile, validation_count
from .errors import DataError
from .splits import split_indices  # noqa: F401  (named here since the first release)

_MAGIC = {1: 0x0801, 3: 0x0803}  # unsigned-byte IDX files with 1 or 3 dimensions


@dataclass(frozen=True, eq=False)
class Dataset:
    """Arrays for one study: float32 images in [0, 1] (flattened), int64 labels."""

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
    return [("user cache", cache_dir() / info.name), ("Debian package", Path(info.debian_dir))]


def _has_all(info: DatasetInfo, folder: Path) -> bool:
    return all((folder / f.name).is_file() for f in info.files.values())


def locate(info: DatasetInfo, data_dir: str | Path | None = None,
           mirrors: tuple[str, ...] | None = None, download: bool = True) -> Path:
    """The folder holding all four files; downloads into the cache as a last resort."""
    places = candidate_dirs(info, data_dir)
    for _, folder in places:
        if _has_all(info, folder):
            return folder
    lines = [f"{label}: {folder}" for label, folder in places]
    if data_dir or os.environ.get("TUNEBOOK_DATA"):
        missing = [f.name for f in info.files.values() if not (places[0][1] / f.name).is_file()]
        raise DataError(f"{info.name}: {places[0][1]} lacks {', '.join(missing)}")
    reason = "download disabled"
    if download:
        target = cache_dir() / info.name
        try:
            return fetch(info, target, mirrors or info.mirrors)
        except DataError as exc:
            reason = str(exc)
    raise DataError(
        f"{info.name}: dataset not found. Looked in:\n  " + "\n  ".join(lines)
        + f"\nDownload failed: {reason}\n"
        f"Install it with `apt-get install {info.debian_package}` (Debian), or put the four "
        f"files ({', '.join(f.name for f in info.files.values())}) in a folder and pass "
        "--data-dir or set TUNEBOOK_DATA.")


def fetch(info: DatasetInfo, target: Path, mirrors: tuple[str, ...], timeout: float = 30.0) -> Path:
    """Download the files into ``target``, each verified before it is put in place."""
    target.mkdir(parents=True, exist_ok=True)
    for f in info.files.values():
        if (target / f.name).is_file():
            continue
        errors = []
        for base in mirrors:
            url = base.rstrip("/") + "/" + f.name
            try:
                _download_one(url, target / f.name, f, timeout)
                break
            except DataError as exc:
                errors.append(str(exc))
        else:
            raise DataError("; ".join(errors))
    return target


def _download_one(url: str, dest: Path, expected: IdxFile, timeout: float) -> None:
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as resp:
                    got, most = 0, idx_bytes(expected) + (1 << 20)  # compressed is never larger than this
                    while chunk := resp.read(1 << 20):
                        got += len(chunk)
                        if got > most:
                            raise DataError(f"{url}: more than {most} bytes, larger than the file can be; "
                                            "not kept")
                        out.write(chunk)
            except (urllib.error.URLError, OSError) as exc:
                raise DataError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        digest = _sha256_of_gzip(Path(tmp), label=url, limit=idx_bytes(expected))
        if digest != expected.sha256:
            raise DataError(f"{url}: checksum mismatch (sha256 of the decompressed data is "
                            f"{digest}, expected {expected.sha256}); the file was not kept")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def idx_bytes(expected: IdxFile) -> int:
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


def read_idx(path: Path, expected: IdxFile, n_classes: int | None = None) -> np.ndarray:
    """One IDX file as a uint8 array, after every check."""
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
    if digest != expected.sha256:
        raise DataError(f"{path}: checksum mismatch (sha256 {digest}, expected {expected.sha256})")
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)
    if n_classes is not None and arr.max() >= n_classes:
        raise DataError(f"{path}: label {int(arr.max())} out of range 0..{n_classes - 1}")
    return arr


@functools.lru_cache(maxsize=2)
def _load_arrays(name: str, folder: str) -> dict[str, np.ndarray]:
    info = DATASETS[name]
    out = {}
    for role, f in info.files.items():
        arr = read_idx(Path(folder) / f.name, f, info.n_classes if role.endswith("labels") else None)
        if role.endswith("images"):
            arr = (arr.reshape(arr.shape[0], -1).astype(np.float32) / 255.0)
        else:
            arr = arr.astype(np.int64)
        arr.setflags(write=False)
        out[role] = arr
    return out


def check_available(name: str, data_dir: str | Path | None = None) -> Path:
    """Find (or download) a dataset's files and check every one of them; a DataError names
    what is wrong. Runs before a study writes anything; the arrays stay cached. A user's
    dataset is in memory already (read and checked when its study file was)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if not DATASETS[name].builtin:
        return _user_arrays(name)[1]
    folder = locate(DATASETS[name], data_dir)
    _load_arrays(name, str(folder))
    return folder


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
    if validation == "test":
        train_idx = np.arange(len(y))
        x_val, y_val = a["test_images"], a["test_labels"]
    else:
        train_idx, val_idx = split_indices(y, float(validation), split_seed, info.n_classes)
        assert len(val_idx) == validation_count(info, float(validation))
        x_val, y_val = x[val_idx], y[val_idx]
    if train_subset and train_subset < len(train_idx):
        rng = np.random.default_rng(split_seed + 1)
        train_idx = np.sort(rng.permutation(train_idx)[:train_subset])
    return Dataset(name=name, validation=validation, x_train=x[train_idx], y_train=y[train_idx],
                   x_val=x_val, y_val=y_val, x_test=a["test_images"], y_test=a["test_labels"],
                   source=str(folder))
