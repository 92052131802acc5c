"""The built-in datasets beyond Fashion-MNIST: MNIST, Kuzushiji-MNIST and CIFAR-10.

These machines cannot reach the datasets' official locations, so downloads are tested
against a real HTTP server on 127.0.0.1 serving files in each dataset's own format,
made here, with a dataset description whose digests are those files' (the shipped
descriptions carry the published digests; ``test_every_builtin_is_described_whole``
checks they are complete and consistent).
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import subprocess
import tarfile
import textwrap

import numpy as np
import pytest

from tunebook.data import _load_arrays, fetch_dataset, load_dataset, locate
from tunebook.datasets import BUILTIN, CIFAR10, DATASETS, KMNIST, MNIST, SourceFile, validation_count
from tunebook.errors import DataError
from tests.conftest import tunebook_cmd

COUNTS = (10, 8, 6, 6, 6, 6, 6, 4, 4, 4)  # not balanced, as MNIST is not


@pytest.fixture(autouse=True)
def no_cached_arrays(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("TUNEBOOK_DATA", raising=False)
    monkeypatch.delenv("TUNEBOOK_MIRROR", raising=False)
    _load_arrays.cache_clear()
    yield
    _load_arrays.cache_clear()


def idx_gz(arr: np.ndarray) -> bytes:
    header = (0x0801 if arr.ndim == 1 else 0x0803).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0)


def sha(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def mnist_like(folder, counts=COUNTS, n_test=20, base=MNIST):
    """MNIST's four files, small, written to ``folder``; and the description with their digests."""
    rng = np.random.default_rng(0)
    y_train = np.repeat(np.arange(10), counts)
    arrays = {"train_images": rng.integers(0, 256, (len(y_train), 28, 28)), "train_labels": rng.permutation(y_train),
              "test_images": rng.integers(0, 256, (n_test, 28, 28)), "test_labels": np.arange(n_test) % 10}
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for role, f in base.files.items():
        blob = idx_gz(arrays[role])
        (folder / f.name).write_bytes(blob)
        files[role] = SourceFile(f.name, "", arrays[role].shape, archive_sha256=sha(blob), size=len(blob))
    info = dataclasses.replace(base, n_train=len(y_train), n_test=n_test, files=files,
                               class_counts=tuple(counts) if base.class_counts else ())
    return info, arrays


def cifar_archive(path, per_batch=4, n_test=5, drop=(), wrong_size=()):
    """A CIFAR-10 binary archive: five training batches and a test batch of records
    (label byte, 1 024 red, 1 024 green, 1 024 blue bytes). Returns the records in order."""
    rng = np.random.default_rng(1)
    records = []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        for name in names:
            rows = n_test if name == "test_batch.bin" else per_batch
            rec = rng.integers(0, 256, (rows, 3073)).astype(np.uint8)
            rec[:, 0] = (np.arange(rows) + sum(len(r) for r in records)) % 10
            records.append(rec)
            if name in drop:
                continue
            data = rec.tobytes()[:-1] if name in wrong_size else rec.tobytes()
            member = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        meta = b"\n".join(c.encode() for c in CIFAR10.classes)
        member = tarfile.TarInfo("cifar-10-batches-bin/batches.meta.txt")
        member.size = len(meta)
        tar.addfile(member, io.BytesIO(meta))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return np.concatenate(records[:5]), records[5]


def cifar_info(path, per_batch=4, n_test=5, mirrors=()):
    blob = path.read_bytes()
    archive = SourceFile(CIFAR10.files["archive"].name, "", (5 * per_batch + n_test, 3073),
                         archive_sha256=sha(blob), size=len(blob))
    return dataclasses.replace(CIFAR10, n_train=5 * per_batch, n_test=n_test, files={"archive": archive},
                               mirrors=mirrors or CIFAR10.mirrors)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_is_described_whole(name):
    """Sizes, classes, digests and locations agree with each other for every built-in dataset."""
    info = DATASETS[name]
    assert info.builtin and len(info.classes) == info.n_classes == len(set(info.classes))
    assert info.mirrors and all(m.startswith(("http://", "https://")) and m.endswith("/") for m in info.mirrors)
    assert info.homepage.startswith(("http://", "https://"))
    for f in info.files.values():
        digest = f.archive_sha256 or f.sha256
        assert len(digest) == 64 and int(digest, 16) >= 0
        assert not f.archive_sha256 or f.size > 0
    if info.class_counts:
        assert len(info.class_counts) == info.n_classes and sum(info.class_counts) == info.n_train
    if info.format == "cifar-binary":
        (archive,) = info.files.values()
        assert archive.shape == (info.n_train + info.n_test, info.n_features + 1)
    else:
        assert info.files["train_images"].shape == (info.n_train, 28, 28) == (info.n_train, 28, info.n_features // 28)
        assert info.files["test_labels"].shape == (info.n_test,)


def test_mnist_downloads_from_the_next_mirror_checks_and_loads_from_the_cache(server, tmp_path):
    root, url, asked = server
    info, arrays = mnist_like(root / "mnist")
    info = dataclasses.replace(info, mirrors=(url + "gone/", url + "mnist/"))
    said = []
    folder = locate(info, say=said.append)
    assert folder == tmp_path / "cache" / "tunebook" / "mnist"
    assert asked == [p for f in info.files.values() for p in (f"/gone/{f.name}", f"/mnist/{f.name}")]
    assert sum("downloading" in line for line in said) == 8 and sum("failed" in line for line in said) == 4
    for f in info.files.values():
        assert (folder / f.name).read_bytes() == (root / "mnist" / f.name).read_bytes()

    DATASETS_BEFORE = dict(DATASETS)
    try:
        DATASETS["mnist"] = info
        ds = load_dataset("mnist", validation=0.5, split_seed=3)
        assert ds.x_train.shape[1] == 784 and ds.x_train.max() <= 1.0
        assert np.bincount(ds.y_val, minlength=10).tolist() == [round(0.5 * n) for n in COUNTS]
        assert len(ds.y_val) == validation_count(info, 0.5)
        np.testing.assert_array_equal(ds.x_test * 255, arrays["test_images"].reshape(20, -1))
        _load_arrays.cache_clear()
        asked.clear()
        again = load_dataset("mnist", validation=0.5, split_seed=3)  # from the cache: nothing asked
        assert asked == [] and np.array_equal(again.x_val, ds.x_val)
    finally:
        DATASETS.clear()
        DATASETS.update(DATASETS_BEFORE)


def test_tunebook_mirror_replaces_the_official_locations(server, monkeypatch):
    root, url, asked = server
    info, _ = mnist_like(root / "kmnist", base=KMNIST)
    monkeypatch.setenv("TUNEBOOK_MIRROR", url.rstrip("/"))
    locate(info, say=lambda line: None)
    assert asked == [f"/kmnist/{f.name}" for f in info.files.values()]


def test_a_download_whose_sha256_differs_is_not_kept(server, tmp_path):
    root, url, _ = server
    info, _ = mnist_like(root / "mnist")
    (root / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(idx_gz(np.zeros(60)))
    info = dataclasses.replace(info, mirrors=(url + "mnist/",))
    with pytest.raises(DataError) as caught:
        locate(info, say=lambda line: None)
    text = str(caught.value)
    assert f"{url}mnist/train-labels-idx1-ubyte.gz: checksum mismatch (sha256 of the file is " in text
    assert info.files["train_labels"].archive_sha256 in text and "the file was not kept" in text
    cached = tmp_path / "cache" / "tunebook" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == ["train-images-idx3-ubyte.gz"]  # the good one before it


def test_a_cached_file_that_changed_is_refused_by_name(tmp_path):
    info, _ = mnist_like(tmp_path / "cache" / "tunebook" / "mnist")
    bad = tmp_path / "cache" / "tunebook" / "mnist" / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(idx_gz(np.ones(20)))
    try:
        DATASETS["mnist"], before = info, MNIST
        with pytest.raises(DataError, match=rf"{bad}: checksum mismatch \(sha256 of the file is [0-9a-f]{{64}}, "
                                            r"expected [0-9a-f]{64}\): not the published file; delete it"):
            load_dataset("mnist")
    finally:
        DATASETS["mnist"] = before


def test_rows_per_class_other_than_published_are_refused(tmp_path):
    info, _ = mnist_like(tmp_path / "d")
    claimed = dataclasses.replace(info, class_counts=(9, 9, 6, 6, 6, 6, 6, 4, 4, 4))
    try:
        DATASETS["mnist"], before = claimed, MNIST
        with pytest.raises(DataError, match=r"mnist's training rows per class are \(10, 8, 6.*expected \(9, 9, 6"):
            load_dataset("mnist", data_dir=tmp_path / "d")
    finally:
        DATASETS["mnist"] = before


def test_cifar10_downloads_and_reads_records_channel_by_channel(server):
    root, url, _ = server
    train, test = cifar_archive(root / "cifar-10-binary.tar.gz")
    info = cifar_info(root / "cifar-10-binary.tar.gz", mirrors=(url,))
    try:
        DATASETS["cifar10"], before = info, CIFAR10
        ds = load_dataset("cifar10", validation="test")
        assert ds.x_train.shape == (20, 3072) and ds.x_test.shape == (5, 3072)
        np.testing.assert_array_equal(ds.y_train, train[:, 0])
        np.testing.assert_array_equal(ds.x_train, train[:, 1:] / np.float32(255))  # red, green, blue planes in turn
        np.testing.assert_array_equal(ds.y_test, test[:, 0])
        split = load_dataset("cifar10", validation=0.5)
        assert np.bincount(split.y_val).tolist() == [1] * 10
    finally:
        DATASETS["cifar10"] = before


@pytest.mark.parametrize("broken, message", [
    ({"drop": ("test_batch.bin",)}, r"lacks cifar-10-batches-bin/test_batch\.bin"),
    ({"wrong_size": ("data_batch_3.bin",)},
     r"cifar-10-batches-bin/data_batch_3\.bin has 12291 bytes, expected 4 records of 3073 bytes"),
])
def test_a_cifar_archive_missing_or_cutting_a_batch_is_named(tmp_path, broken, message):
    path = tmp_path / "d" / "cifar-10-binary.tar.gz"
    cifar_archive(path, **broken)
    try:
        DATASETS["cifar10"], before = cifar_info(path), CIFAR10
        with pytest.raises(DataError, match=rf"{path}: " + message):
            load_dataset("cifar10", data_dir=tmp_path / "d")
    finally:
        DATASETS["cifar10"] = before


def test_a_study_trains_on_a_builtin_other_than_fashion_mnist(tmp_path):
    """The whole path on a dataset that is not balanced: the hold-out is sized from its rows
    per class, the trial records the dataset, and training runs."""
    import tunebook

    info, _ = mnist_like(tmp_path / "d")
    study = tmp_path / "digits.toml"
    study.write_text(textwrap.dedent("""
        [study]
        name = "digits"
        dataset = "mnist"
        validation = 0.5
        seeds = 2
        [defaults]
        layers = [16]
        epochs = 2
        batch_size = 10
        lr = 0.01
        optimizer = "adam"
    """))
    try:
        DATASETS["mnist"], before = info, MNIST
        outcome = tunebook.run_study(tunebook.load_spec(study), out=tmp_path / "logs", data_dir=tmp_path / "d",
                                     device="cpu")
        assert outcome.trained == 2 and {r.config.dataset for r in outcome.runs} == {"mnist"}
        assert all(r.result.status == "complete" and len(r.result.history.val_acc) == 2 for r in outcome.runs)
    finally:
        DATASETS["mnist"] = before


def test_run_on_a_dataset_whose_download_fails_its_check_writes_nothing(server, tmp_path, cli_env):
    root, url, _ = server
    (root / "mnist").mkdir()
    (root / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"not the published file")
    study = tmp_path / "digits.toml"
    study.write_text('[study]\nname = "digits"\ndataset = "mnist"\n[defaults]\nlayers = [16]\nepochs = 1\n')
    env = cli_env | {"TUNEBOOK_MIRROR": url, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("TUNEBOOK_DATA", None)
    proc = subprocess.run(tunebook_cmd("run", str(study), "--out", str(tmp_path / "logs")), env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert f"{url}mnist/train-images-idx3-ubyte.gz: checksum mismatch (sha256 of the file is" in proc.stderr
    assert "expected 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in proc.stderr
    assert "Download it from http://yann.lecun.com/exdb/mnist/" in proc.stderr
    assert not (tmp_path / "logs").exists() and not (tmp_path / "cache" / "tunebook" / "mnist").exists()


def test_the_datasets_command_lists_fetches_and_names_unknown_ones(tmp_path, cli_env):
    env = cli_env | {"XDG_CACHE_HOME": str(tmp_path / "cache"), "TUNEBOOK_MIRROR": "http://127.0.0.1:9",
                     "COLUMNS": "200"}
    env.pop("TUNEBOOK_DATA", None)
    listed = subprocess.run(tunebook_cmd("datasets"), env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0
    lines = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines() if line.count("│") > 3}
    assert set(lines) == set(BUILTIN)
    assert "/usr/share/datasets/fashion-mnist" in lines["fashion-mnist"] and "not here" in lines["cifar10"]
    assert "3072" in lines["cifar10"] and "50000" in lines["cifar10"]
    unknown = subprocess.run(tunebook_cmd("datasets", "svhn"), env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown built-in dataset 'svhn' (built in: fashion-mnist, mnist" in unknown.stderr
    fetched = subprocess.run(tunebook_cmd("datasets", "fashion-mnist", "--fetch"), env=env, capture_output=True,
                             text=True, timeout=120)
    assert fetched.returncode == 0 and "fashion-mnist: every file checked, in /usr/share/datasets/fashion-mnist" \
        in fetched.stdout
    offline = subprocess.run(tunebook_cmd("datasets", "kmnist", "--fetch"), env=env, capture_output=True,
                             text=True, timeout=120)
    assert offline.returncode == 2 and "kmnist: dataset not found" in offline.stderr
    assert "http://127.0.0.1:9/kmnist/train-images-idx3-ubyte.gz" in offline.stderr
    study = tmp_path / "c.toml"
    study.write_text('[study]\nname = "c"\ndataset = "cifar10"\n[defaults]\nlayers = [64]\nepochs = 1\n')
    checked = subprocess.run(tunebook_cmd("validate", str(study)), env=env, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0 and "1 trial (1 configuration × 1 seed)" in checked.stdout
    assert (f"dataset cifar10: not on this machine yet; the first run downloads it (170 MB) into "
            f"{tmp_path / 'cache' / 'tunebook' / 'cifar10'}") in " ".join(checked.stdout.split())


def test_fetch_dataset_refuses_a_name_that_is_not_built_in():
    with pytest.raises(DataError, match=r"unknown built-in dataset 'iris' \(built in: fashion-mnist, mnist, kmnist, "
                                        r"cifar10\)"):
        fetch_dataset("iris")
