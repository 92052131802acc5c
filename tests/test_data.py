from __future__ import annotations

import dataclasses
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from tunebook.data import fetch, load_dataset, locate, read_idx, split_indices
from tunebook.datasets import FASHION_MNIST
from tunebook.errors import DataError

DEBIAN = Path(FASHION_MNIST.debian_dir)
LABELS = FASHION_MNIST.files["train_labels"]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """FASHION_MNIST with no Debian folder and an empty user cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TUNEBOOK_DATA", raising=False)
    return dataclasses.replace(FASHION_MNIST, debian_dir=str(tmp_path / "no-debian"))


def test_real_files_load_with_expected_shapes():
    ds = load_dataset()
    assert ds.x_train.shape == (54_000, 784) and ds.x_val.shape == (6_000, 784)
    assert ds.x_test.shape == (10_000, 784) and ds.x_train.dtype == np.float32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    assert np.bincount(ds.y_val).tolist() == [600] * 10  # stratified


def test_split_is_deterministic_stratified_and_disjoint():
    y = load_dataset().y_test  # any labels will do
    a_train, a_val = split_indices(y, 0.1, 7, 10)
    b_train, b_val = split_indices(y, 0.1, 7, 10)
    assert np.array_equal(a_val, b_val) and np.array_equal(a_train, b_train)
    assert not set(a_train) & set(a_val) and len(a_train) + len(a_val) == len(y)
    _, c_val = split_indices(y, 0.1, 8, 10)
    assert not np.array_equal(a_val, c_val)


def test_validation_test_reproduces_the_logs_habit():
    ds = load_dataset(validation="test")
    assert ds.val_is_test and ds.x_train.shape[0] == 60_000
    assert np.array_equal(ds.x_val, ds.x_test)


def test_subset_takes_n_training_samples():
    assert load_dataset(train_subset=500).x_train.shape == (500, 784)


def _write_gz(path: Path, raw: bytes) -> None:
    with gzip.open(path, "wb") as fh:
        fh.write(raw)


def test_truncated_gzip_is_a_clear_error(tmp_path):
    bad = tmp_path / LABELS.name
    bad.write_bytes((DEBIAN / LABELS.name).read_bytes()[:2000])
    with pytest.raises(DataError, match=rf"{LABELS.name}: not a complete gzip file"):
        read_idx(bad, LABELS)


def test_truncated_idx_payload_is_a_clear_error(tmp_path):
    raw = gzip.decompress((DEBIAN / LABELS.name).read_bytes())
    bad = tmp_path / LABELS.name
    _write_gz(bad, raw[:-10])
    with pytest.raises(DataError, match=r"truncated IDX file \(59990 data bytes, expected 60000\)"):
        read_idx(bad, LABELS)


def test_bad_magic_and_bad_label_are_clear_errors(tmp_path):
    raw = bytearray(gzip.decompress((DEBIAN / LABELS.name).read_bytes()))
    bad = tmp_path / LABELS.name
    raw2 = bytes(raw)
    raw[3] = 0x03
    _write_gz(bad, bytes(raw))
    with pytest.raises(DataError, match=r"bad IDX magic number 0x00000803, expected 0x00000801"):
        read_idx(bad, LABELS)
    corrupt = bytearray(raw2)
    corrupt[100] = 42
    _write_gz(bad, bytes(corrupt))
    with pytest.raises(DataError, match=r"checksum mismatch"):
        read_idx(bad, LABELS)
    unchecked = dataclasses.replace(LABELS, sha256=__import__("hashlib").sha256(bytes(corrupt)).hexdigest())
    with pytest.raises(DataError, match=r"label 42 out of range 0..9"):
        read_idx(bad, unchecked, n_classes=10)


def test_download_from_local_http_server(server, isolated):
    root, url, _ = server
    for f in FASHION_MNIST.files.values():
        shutil.copy(DEBIAN / f.name, root / f.name)
    folder = locate(isolated, mirrors=(url,))
    assert folder == Path(isolated.debian_dir).parent / "cache" / "tunebook" / "fashion-mnist"
    for f in FASHION_MNIST.files.values():
        assert (folder / f.name).read_bytes() == (DEBIAN / f.name).read_bytes()
    assert read_idx(folder / LABELS.name, LABELS).shape == (60_000,)


def test_download_checksum_mismatch_keeps_nothing(server, tmp_path):
    root, url, _ = server
    raw = bytearray(gzip.decompress((DEBIAN / LABELS.name).read_bytes()))
    raw[-1] = (raw[-1] + 1) % 10
    _write_gz(root / LABELS.name, bytes(raw))
    target = tmp_path / "dl"
    only_labels = dataclasses.replace(FASHION_MNIST, files={"train_labels": LABELS})
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: checksum mismatch .* the file was not kept"):
        fetch(only_labels, target, (url,))
    assert not target.exists()  # nothing kept, not even the folder


def test_offline_and_nothing_found_lists_where_it_looked(isolated):
    with pytest.raises(DataError) as info:
        locate(isolated, mirrors=("http://127.0.0.1:9/",))
    text = str(info.value)
    assert "dataset not found. Looked in:" in text and "no-debian" in text and "user cache" in text
    assert "apt-get install dataset-fashion-mnist" in text and "TUNEBOOK_DATA" in text


def test_explicit_data_dir_missing_files(tmp_path):
    with pytest.raises(DataError, match=r"lacks train-images-idx3-ubyte.gz"):
        locate(FASHION_MNIST, data_dir=tmp_path)


def test_a_gzip_bomb_is_refused_while_it_is_read(tmp_path, monkeypatch):
    """A 100 KB archive that inflates to 100 MB: refused after reading at most the IDX
    file's own size (60 008 bytes) plus one, not after inflating it all."""
    bomb = tmp_path / LABELS.name
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        for _ in range(100):
            fh.write(b"\0" * (1 << 20))
    assert bomb.stat().st_size < 200_000
    asked = []
    real_open = gzip.open

    def watching(*a, **k):
        fh = real_open(*a, **k)
        read = fh.read

        def counted(n=-1):
            asked.append(n)
            return read(n)
        fh.read = counted
        return fh

    monkeypatch.setattr(gzip, "open", watching)
    with pytest.raises(DataError, match=r"decompresses to more than the 60008 bytes this IDX file has"):
        read_idx(bomb, LABELS)
    assert asked == [60_009]


def test_a_download_larger_than_the_file_can_be_is_cut_off(server, tmp_path):
    root, url, _ = server
    (root / LABELS.name).write_bytes(b"x" * (60_008 + (1 << 20) + 10))
    target = tmp_path / "dl"
    only_labels = dataclasses.replace(FASHION_MNIST, files={"train_labels": LABELS})
    with pytest.raises(DataError, match=r"larger than the file can be; not kept"):
        fetch(only_labels, target, (url,))
    assert not target.exists()  # nothing kept, not even the folder


def test_a_driver_s_check_reads_every_file_but_keeps_no_arrays(tmp_path):
    """``check_available(load=False)`` where only the decompressed data has a digest
    (Debian's Fashion-MNIST): every file is still read and checked — a changed one is
    named — but no arrays stay cached in the driver."""
    from tunebook import data

    folder = tmp_path / "fm"
    shutil.copytree(DEBIAN, folder)
    data._load_arrays.cache_clear()
    assert data.check_available("fashion-mnist", folder, load=False) == folder
    assert data._load_arrays.cache_info().currsize == 0
    reads = []
    real = data._read_files
    data._read_files = lambda *a: reads.append(a) or real(*a)
    try:  # checked again, unchanged: not read again (a programme checks once per study)
        assert data.check_available("fashion-mnist", folder, load=False) == folder and reads == []
        stricter = dataclasses.replace(FASHION_MNIST, class_counts=(1,) * 10)
        data.DATASETS["fashion-mnist"], before = stricter, data.DATASETS["fashion-mnist"]
        try:  # other expectations of the same files: checked again, and refused
            with pytest.raises(DataError, match="training rows per class"):
                data.check_available("fashion-mnist", folder, load=False)
        finally:
            data.DATASETS["fashion-mnist"] = before
        assert len(reads) == 1
    finally:
        data._read_files = real
    raw = bytearray(gzip.decompress((folder / LABELS.name).read_bytes()))
    raw[100] = (raw[100] + 1) % 10
    _write_gz(folder / LABELS.name, bytes(raw))
    with pytest.raises(DataError, match=rf"{LABELS.name}: checksum mismatch"):
        data.check_available("fashion-mnist", folder, load=False)


def test_features_made_after_the_split_equal_the_plain_division_of_every_row():
    """Images are scaled once the split has picked their rows, in place: the same floats as
    dividing the whole set by 255 and then picking (the split of every earlier version)."""
    def plain(role):
        raw = read_idx(DEBIAN / FASHION_MNIST.files[role].name, FASHION_MNIST.files[role])
        return raw.reshape(raw.shape[0], -1).astype(np.float32) / 255.0

    from tunebook.splits import strata

    ds = load_dataset(train_subset=5000)
    groups, n_strata = strata(read_idx(DEBIAN / LABELS.name, LABELS).astype(np.int64), 10)
    train_idx, val_idx = split_indices(groups, 0.1, 0, n_strata)
    train_idx = np.sort(np.random.default_rng(1).permutation(train_idx)[:5000])
    images = plain("train_images")
    assert np.array_equal(ds.x_train, images[train_idx]) and np.array_equal(ds.x_val, images[val_idx])
    assert np.array_equal(ds.x_test, plain("test_images")) and ds.x_train.dtype == np.float32
