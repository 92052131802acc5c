"""What tunebook knows about each dataset before reading it (no I/O, no numpy).

Spec validation needs the sizes (a batch larger than the training split is an error
before anything is loaded); :mod:`tunebook.data` needs the file names and checksums.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class IdxFile:
    """One gzipped IDX file of a dataset.

    ``sha256`` is the digest of the *decompressed* IDX bytes, computed from Debian's
    ``dataset-fashion-mnist``: two .gz archives of the same data can differ (gzip header,
    compression level), and the official archives could not be fetched here to hash, so
    the data itself is what is checked, whichever archive it came in.
    """

    name: str
    sha256: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's sizes and names: a built-in one's files and where to get them, or a
    user's data (a file or arrays: :mod:`tunebook.userdata`), read once and held in memory."""

    name: str
    n_train: int
    n_test: int
    n_features: int
    n_classes: int
    classes: tuple[str, ...]
    files: dict[str, IdxFile] = field(default_factory=dict)  # role ("train_images", ...) -> file
    mirrors: tuple[str, ...] = ()
    debian_dir: str = ""
    debian_package: str = ""
    class_counts: tuple[int, ...] = ()  # rows per class of the training split (empty: balanced)
    features: tuple[str, ...] = ()      # a table's feature names, after one-hot encoding
    fingerprint: str = ""               # SHA-256 of a user's arrays and reading options
    origin: str = ""                    # where a user's data came from (its file, or "arrays")
    preprocessing: str = ""             # JSON: how inputs became features (scale, categories, classes)

    @property
    def builtin(self) -> bool:
        return not self.fingerprint


FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    n_train=60_000,
    n_test=10_000,
    n_features=784,
    n_classes=10,
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    files={
        "train_images": IdxFile(
            "train-images-idx3-ubyte.gz",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            (60_000, 28, 28)),
        "train_labels": IdxFile(
            "train-labels-idx1-ubyte.gz",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            (60_000,)),
        "test_images": IdxFile(
            "t10k-images-idx3-ubyte.gz",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            (10_000, 28, 28)),
        "test_labels": IdxFile(
            "t10k-labels-idx1-ubyte.gz",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            (10_000,)),
    },
    # The dataset's official download location (Zalando Research's S3 bucket).
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    debian_dir="/usr/share/datasets/fashion-mnist",
    debian_package="dataset-fashion-mnist",
)

#: Every dataset this process knows: the built-in ones, and the user's data registered
#: as study files name it (:func:`tunebook.userdata.register`), by its key ``name-<fingerprint>``.
DATASETS: dict[str, DatasetInfo] = {FASHION_MNIST.name: FASHION_MNIST}
BUILTIN = (FASHION_MNIST.name,)


def io_sizes(dataset: str) -> tuple[int, int]:
    """(inputs, classes) of a dataset: what every count of parameters, FLOPs, memory and
    cost needs besides the hidden widths (the model functions' defaults are Fashion-MNIST's)."""
    info = DATASETS[dataset]
    return info.n_features, info.n_classes


def validation_count(info: DatasetInfo, fraction: float) -> int:
    """Size of the stratified hold-out: ``round(fraction * n_c)`` per class, summed (as
    :func:`tunebook.data.split_indices` draws it). A built-in dataset is balanced
    (Fashion-MNIST: 6 000 images per class); a user's counts its classes."""
    if info.class_counts:
        return sum(round(fraction * n) for n in info.class_counts)
    per_class = info.n_train // info.n_classes
    return round(fraction * per_class) * info.n_classes


def train_count(info: DatasetInfo, validation: float | str, subset: int = 0) -> int:
    """Number of training samples a trial sees (after the hold-out and any subset)."""
    n = info.n_train if validation == "test" else info.n_train - validation_count(info, float(validation))
    return min(n, subset) if subset else n
