"""What tunebook knows about each dataset before reading it (no I/O, no numpy).

Spec validation needs the sizes (a batch larger than the training split is an error
before anything is loaded); :mod:`tunebook.data` needs the file names and checksums.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SourceFile:
    """One file of a built-in dataset, and how it is checked.

    ``sha256`` is the digest of the *decompressed* IDX bytes. Fashion-MNIST's are computed
    from Debian's ``dataset-fashion-mnist``, whose .gz archives differ from the official
    ones (gzip header, compression level) while holding the same data: the data itself is
    what is checked, whichever archive it came in.

    ``archive_sha256`` and ``size`` are the digest and length of the file *as published*
    (MNIST, Kuzushiji-MNIST, CIFAR-10: no Debian package holds them, so the published
    archive is the only copy there is). Their figures are TensorFlow Datasets' recorded
    checksums of the same URLs (``tensorflow_datasets/url_checksums``), which these
    machines, having no internet, could not check against the files themselves.

    ``shape`` is the decoded array's: ``(n, 28, 28)`` images, ``(n,)`` labels, or for a
    CIFAR archive ``(records, bytes per record)`` over all its batches.
    """

    name: str
    sha256: str
    shape: tuple[int, ...]
    archive_sha256: str = ""
    size: int = 0


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
    files: dict[str, SourceFile] = field(default_factory=dict)  # role ("train_images", ...) -> file
    mirrors: tuple[str, ...] = ()
    debian_dir: str = ""
    debian_package: str = ""
    class_counts: tuple[int, ...] = ()  # rows per class of the training split (empty: balanced)
    features: tuple[str, ...] = ()      # a table's feature names, after one-hot encoding
    fingerprint: str = ""               # SHA-256 of a user's arrays and reading options
    origin: str = ""                    # where a user's data came from (its file, or "arrays")
    preprocessing: str = ""             # JSON: how inputs became features (scale, categories, classes)
    format: str = "idx"                 # a built-in one's files: "idx" (four IDX files) or "cifar-binary"
    homepage: str = ""                  # where a built-in dataset is described (and its terms of use)
    #: a regression target (``n_classes = 0``: no classes; one output): the training split's
    #: mean and standard deviation, which its arrays are standardised by — errors are
    #: reported in the target's own units (rmse × target_sd)
    target_mean: float = 0.0
    target_sd: float = 1.0
    target: str = ""                    # the target's name (a table's column), for the report's words
    #: one input's shape before flattening (a user's model gets its images back): the
    #: built-in images' (channels, height, width); empty: a flat row of n_features
    input_shape: tuple[int, ...] = ()

    @property
    def builtin(self) -> bool:
        return not self.fingerprint

    @property
    def task(self) -> str:
        """``"classification"`` or ``"regression"`` (a numeric target: ``n_classes == 0``)."""
        return "regression" if self.n_classes == 0 else "classification"

    @property
    def n_outputs(self) -> int:
        """The network's output units: one per class, or one number."""
        return max(self.n_classes, 1)


FASHION_MNIST = DatasetInfo(
    name="fashion-mnist",
    input_shape=(1, 28, 28),
    n_train=60_000,
    n_test=10_000,
    n_features=784,
    n_classes=10,
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
             "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    files={
        "train_images": SourceFile(
            "train-images-idx3-ubyte.gz",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            (60_000, 28, 28)),
        "train_labels": SourceFile(
            "train-labels-idx1-ubyte.gz",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            (60_000,)),
        "test_images": SourceFile(
            "t10k-images-idx3-ubyte.gz",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            (10_000, 28, 28)),
        "test_labels": SourceFile(
            "t10k-labels-idx1-ubyte.gz",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            (10_000,)),
    },
    # The dataset's official download location (Zalando Research's S3 bucket).
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    debian_dir="/usr/share/datasets/fashion-mnist",
    debian_package="dataset-fashion-mnist",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
)


def _mnist_like(name: str, classes: tuple[str, ...], files: dict[str, tuple[int, str]], mirrors: tuple[str, ...],
                homepage: str, class_counts: tuple[int, ...] = ()) -> DatasetInfo:
    """A dataset in MNIST's four IDX files: ``files`` maps each role to (published size, sha256)."""
    shapes = {"train_images": ("train-images-idx3-ubyte.gz", (60_000, 28, 28)),
              "train_labels": ("train-labels-idx1-ubyte.gz", (60_000,)),
              "test_images": ("t10k-images-idx3-ubyte.gz", (10_000, 28, 28)),
              "test_labels": ("t10k-labels-idx1-ubyte.gz", (10_000,))}
    return DatasetInfo(
        name=name, n_train=60_000, n_test=10_000, n_features=784, n_classes=len(classes), classes=classes,
        files={role: SourceFile(file, "", shape, archive_sha256=files[role][1], size=files[role][0])
               for role, (file, shape) in shapes.items()},
        mirrors=mirrors, homepage=homepage, class_counts=class_counts, input_shape=(1, 28, 28))


MNIST = _mnist_like(
    "mnist", tuple(str(d) for d in range(10)),
    {"train_images": (9_912_422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
     "train_labels": (28_881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
     "test_images": (1_648_877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
     "test_labels": (4_542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6")},
    # Yann LeCun's page is the official location (it has refused downloads at times); the
    # same files are kept by Google (TensorFlow's mirror) and by PyTorch's (torchvision's).
    mirrors=("http://yann.lecun.com/exdb/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/",
             "https://ossci-datasets.s3.amazonaws.com/mnist/"),
    homepage="http://yann.lecun.com/exdb/mnist/",
    # MNIST is not balanced: training images per digit 0..9 (a stratified hold-out is sized from them).
    class_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949))

KMNIST = _mnist_like(
    "kmnist", ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),  # お き す つ な は ま や れ を
    {"train_images": (18_165_135, "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"),
     "train_labels": (29_497, "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
     "test_images": (3_041_136, "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
     "test_labels": (5_120, "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c")},
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),  # the ROIS-DS Center's, the official one
    homepage="https://github.com/rois-codh/kmnist")

CIFAR10 = DatasetInfo(
    name="cifar10",
    input_shape=(3, 32, 32),
    n_train=50_000,
    n_test=10_000,
    n_features=3072,  # 32 × 32 pixels × 3 channels, flattened channel by channel (all red, then green, blue)
    n_classes=10,
    classes=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    files={"archive": SourceFile(
        "cifar-10-binary.tar.gz", "", (60_000, 3073),
        archive_sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd", size=170_052_171)},
    mirrors=("https://www.cs.toronto.edu/~kriz/",),  # Alex Krizhevsky's page, the official one
    homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
    format="cifar-binary")

#: Every dataset this process knows: the built-in ones, and the user's data registered
#: as study files name it (:func:`tunebook.userdata.register`), by its key ``name-<fingerprint>``.
DATASETS: dict[str, DatasetInfo] = {d.name: d for d in (FASHION_MNIST, MNIST, KMNIST, CIFAR10)}
BUILTIN = tuple(DATASETS)


def io_sizes(dataset: str) -> tuple[int, int]:
    """(inputs, classes) of a dataset: what every count of parameters, FLOPs, memory and
    cost needs besides the hidden widths (the model functions' defaults are Fashion-MNIST's)."""
    info = DATASETS[dataset]
    return info.n_features, info.n_outputs


def validation_count(info: DatasetInfo, fraction: float) -> int:
    """Size of the stratified hold-out: ``round(fraction * n_c)`` per class, summed (as
    :func:`tunebook.data.split_indices` draws it). A dataset that is not balanced
    (MNIST, a user's) lists its rows per class; the others have ``n_train / n_classes`` each.
    A regression target is stratified by its deciles (:func:`tunebook.splits.strata`),
    whose sizes it lists the same way."""
    if info.class_counts:
        return sum(round(fraction * n) for n in info.class_counts)
    per_class = info.n_train // info.n_classes
    return round(fraction * per_class) * info.n_classes


def train_count(info: DatasetInfo, validation: float | str, subset: int = 0) -> int:
    """Number of training samples a trial sees (after the hold-out and any subset)."""
    n = info.n_train if validation == "test" else info.n_train - validation_count(info, float(validation))
    return min(n, subset) if subset else n
