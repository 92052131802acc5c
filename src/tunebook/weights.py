"""Trained weights kept in a run folder, and the model they make.

A kept run holds ``weights.safetensors``: one plain MLP's tensors (``linear0.weight``,
``linear0.bias``, … in ``torch.nn.Linear``'s layout: weight ``[out, in]``), whatever stack
it trained in, and as metadata everything needed to use it — the activation, the layer
widths, the class names and the preprocessing of the inputs (flattening, scaling,
one-hot categories). :func:`load_model` gives a ``torch.nn.Module`` in eval mode and a
``predict`` that applies the same preprocessing; the README shows how to load the file
with plain PyTorch, without tunebook.

safetensors (a dependency of tunebook) writes and reads the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import StoreError

WEIGHTS = "weights.safetensors"
#: A network with norms or residual skips: the tensors of format 1, plus ``norm{k}.*`` and
#: ``skip{j}.weight``; metadata ``norm`` and ``residual`` say how they join (README).
FORMAT_DEEP = "tunebook-mlp-2"
#: A user's model: its ``state_dict`` (the names its module gives them); metadata ``model``
#: (the factory), ``model_params`` (JSON), ``model_file`` (where it was imported from),
#: ``input_shape`` (JSON: the shape one input row is given back before the module sees it).
FORMAT_MODULE = "tunebook-module-1"
KEEP = ("best", "all", "none")


def member_state(params: Sequence, row: int, layers: Sequence[int], n_in: int, n_out: int) -> dict[str, np.ndarray]:
    """Row ``row`` of a stack's parameters (``[T, in, out]`` weights, ``[T, 1, out]``
    biases, padded to the widest member) as one MLP's tensors at its own widths."""
    dims = [n_in, *layers, n_out]
    out = {}
    for k, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        w = params[2 * k][row, :fan_in, :fan_out]
        b = params[2 * k + 1][row, 0, :fan_out]
        out[f"linear{k}.weight"] = w.t().contiguous().detach().cpu().numpy().copy()
        out[f"linear{k}.bias"] = b.contiguous().detach().cpu().numpy().copy()
    return out


def module_state(model) -> dict[str, np.ndarray]:
    """A reference-trained MLP's tensors as :func:`member_state` names them: an
    ``nn.Sequential``'s linear layers, or a ``DeepMLP``'s linear layers, norms
    (``norm{k}.weight``, ``.bias``, batch norm's ``.running_mean``, ``.running_var``) and
    residual projections (``skip{j}.weight``, into hidden layer j)."""
    import torch

    def arr(t) -> np.ndarray:
        return t.detach().cpu().numpy().copy()

    linears = list(model.linears) if hasattr(model, "linears") else [m for m in model if isinstance(m, torch.nn.Linear)]
    out = {}
    for k, lin in enumerate(linears):
        out[f"linear{k}.weight"] = arr(lin.weight)
        if lin.bias is not None:
            out[f"linear{k}.bias"] = arr(lin.bias)
    for k, norm in enumerate(getattr(model, "norms", ())):
        if isinstance(norm, (torch.nn.BatchNorm1d, torch.nn.LayerNorm)):
            out[f"norm{k}.weight"], out[f"norm{k}.bias"] = arr(norm.weight), arr(norm.bias)
        if isinstance(norm, torch.nn.BatchNorm1d):
            out[f"norm{k}.running_mean"], out[f"norm{k}.running_var"] = arr(norm.running_mean), arr(norm.running_var)
    for j, skip in enumerate(getattr(model, "skips", ()), start=1):
        if isinstance(skip, torch.nn.Linear):
            out[f"skip{j}.weight"] = arr(skip.weight)
    return out


def metadata(config, classes: Sequence[str], preprocessing: Mapping[str, Any]) -> dict[str, str]:
    """What a kept run's weights file says about itself (safetensors metadata: strings)."""
    meta = {"format": "tunebook-mlp-1", "trial": config.trial_id, "activation": config.activation,
            "layers": json.dumps(list(config.layers)), "classes": json.dumps(list(classes)),
            "dataset": config.dataset, "preprocessing": json.dumps(dict(preprocessing), sort_keys=True)}
    if config.model:  # a user's module: rebuilt by its factory, its state_dict loaded
        from .usermodel import model_data, remembered

        meta.update({"format": FORMAT_MODULE, "model": config.model,
                     "model_params": json.dumps(dict(config.model_params), sort_keys=True),
                     "model_file": remembered(config.model).file,
                     "input_shape": json.dumps(list(model_data(config.dataset).input_shape))})
        for k in ("activation", "layers"):
            meta.pop(k)
    elif config.norm != "none" or config.residual:  # not a plain stack of Linear layers
        meta.update({"format": FORMAT_DEEP, "norm": config.norm, "residual": json.dumps(config.residual)})
    return meta


def write(path: Path, state: Mapping[str, np.ndarray], meta: Mapping[str, str]) -> None:
    """``state`` and ``meta`` as a safetensors file at ``path`` (written whole, then renamed)."""
    from safetensors.numpy import save

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()},
                         metadata=dict(meta)))
    tmp.replace(path)


def preprocessing_of(info) -> dict[str, Any]:
    """How inputs become the model's features, for a dataset's info: a user's dataset
    recorded it; a built-in one's images are flattened and scaled to [0, 1]."""
    if info.preprocessing:
        return json.loads(info.preprocessing)
    return {"scale": "unit", "classes": list(info.classes), "n_features": info.n_features}


@dataclass
class Model:
    """A kept run's trained MLP: ``module`` (``torch.nn.Sequential``, eval mode),
    ``classes``, and :meth:`predict` / :meth:`predict_proba` on raw inputs."""

    module: Any
    classes: tuple[str, ...]
    preprocessing: dict[str, Any]
    trial_id: str

    def _inputs(self, x):
        """The features as the module takes them: a user's module gets each row's shape back."""
        import torch

        t = torch.from_numpy(self.features(x))
        shape = self.preprocessing.get("input_shape")
        return t.view(len(t), *shape) if shape else t

    def features(self, x) -> np.ndarray:
        """Raw inputs as the model's float32 features: an array of rows (images of any
        shape), or a table (a dict of columns, or a pandas DataFrame) with the training
        file's columns — categories one-hot, scaled as in training."""
        pre = self.preprocessing
        if isinstance(x, Mapping) or hasattr(x, "columns"):
            x = _table_features({str(c): list(x[c]) for c in (x.columns if hasattr(x, "columns") else x)}, pre)
        else:
            x = np.asarray(x, dtype=np.float64)
            x = x.reshape(len(x), -1)
            if pre.get("scale") == "unit":
                x = x / 255.0
            elif pre.get("scale") == "standard":
                x = (x - np.asarray(pre["mean"])) / np.asarray(pre["sd"])
        return np.asarray(x, dtype=np.float32)

    def predict_proba(self, x) -> np.ndarray:
        import torch

        if self.regression:
            raise StoreError(f"run {self.trial_id}: a regression predicts numbers (predict), not class probabilities")
        with torch.no_grad():
            logits = self.module(self._inputs(x))
            return torch.softmax(logits, dim=1).numpy()

    @property
    def regression(self) -> bool:
        """Whether it predicts a number (its training recorded a regression target)."""
        return self.preprocessing.get("task") == "regression"

    def predict_values(self, x) -> np.ndarray:
        """A regression model's prediction for each input row, in the target's own units."""
        import torch

        if not self.regression:
            raise StoreError(f"run {self.trial_id}: a classifier predicts classes (predict, predict_proba)")
        with torch.no_grad():
            out = self.module(self._inputs(x))[:, 0].double().numpy()
        return out * self.preprocessing["target_sd"] + self.preprocessing["target_mean"]

    def predict(self, x) -> "list[str] | np.ndarray":
        """The class name of each input row — or, for a regression, its predicted value."""
        if self.regression:
            return self.predict_values(x)
        return [self.classes[i] for i in self.predict_proba(x).argmax(axis=1)]


def _table_features(columns: dict[str, list], pre: Mapping[str, Any]) -> np.ndarray:
    numeric = pre.get("features", [])
    missing = [c for c in [*numeric, *pre.get("categories", {})] if c not in columns]
    if missing:
        raise StoreError(f"predict: the table lacks column(s) {', '.join(map(repr, missing))} the model was "
                         "trained on")
    cols = []
    for c in numeric:
        try:
            cols.append(np.array([float(v) for v in columns[c]], dtype=np.float64))
        except (TypeError, ValueError):
            raise StoreError(f"predict: column {c!r} holds a value that is not a number") from None
    x = np.stack(cols, axis=1) if cols else np.zeros((len(next(iter(columns.values()))), 0))
    for c, cats in pre.get("categories", {}).items():
        values = [str(v) for v in columns[c]]
        x = np.concatenate([x, np.array([[v == k for k in cats] for v in values], dtype=np.float64)], axis=1)
    if pre.get("scale") == "standard":
        x = (x - np.asarray(pre["mean"])) / np.asarray(pre["sd"])
    elif pre.get("scale") == "unit":
        x = x / 255.0
    return x


def load_model(run) -> Model:
    """The trained model of a kept run (a run folder's path, or a :class:`tunebook.store.Run`)."""
    import torch
    from safetensors import safe_open

    folder = Path(getattr(run, "path", run))
    path = folder / WEIGHTS
    if not path.is_file():
        raise StoreError(f"{folder}: no {WEIGHTS} (its weights were not kept: [study] keep = \"all\", or "
                         f"`tunebook keep {folder}` and run the study again)")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
        state = {k: f.get_tensor(k) for k in f.keys()}
    if meta.get("format") == FORMAT_MODULE:
        return Model(_user_module(meta, state, path), tuple(json.loads(meta["classes"])),
                     json.loads(meta["preprocessing"]) | {"input_shape": json.loads(meta["input_shape"])},
                     meta.get("trial", ""))
    if meta.get("format") == FORMAT_DEEP:
        return Model(_deep_module(meta, state, path), tuple(json.loads(meta["classes"])),
                     json.loads(meta["preprocessing"]), meta.get("trial", ""))
    if meta.get("format") != "tunebook-mlp-1":
        raise StoreError(f"{path}: not a tunebook weights file (format {meta.get('format')!r})")
    acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "gelu": torch.nn.GELU}
    n = len(state) // 2
    mods: list[torch.nn.Module] = []
    for k in range(n):
        w, b = state[f"linear{k}.weight"], state[f"linear{k}.bias"]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        mods.append(lin)
        if k < n - 1:
            mods.append(acts[meta["activation"]]())
    module = torch.nn.Sequential(*mods).eval()
    return Model(module, tuple(json.loads(meta["classes"])), json.loads(meta["preprocessing"]), meta.get("trial", ""))


def _deep_module(meta: Mapping[str, str], state: Mapping[str, Any], path: Path):
    """A format-2 file's network: ``tunebook.model.DeepMLP`` (plain torch.nn layers, as
    the reference trainer builds it)."""
    import torch

    from .model import DeepMLP

    layers = json.loads(meta["layers"])
    n_in, n_out = state["linear0.weight"].shape[1], state[f"linear{len(layers)}.weight"].shape[0]
    module = DeepMLP(layers, n_in, n_out, meta["activation"], meta["norm"], json.loads(meta["residual"]),
                     [torch.nn.Identity() for _ in layers])
    names = {f"linear{k}.{p}": f"linears.{k}.{p}" for k in range(len(layers) + 1) for p in ("weight", "bias")}
    names.update({f"norm{k}.{p}": f"norms.{k}.{p}" for k in range(len(layers))
                  for p in ("weight", "bias", "running_mean", "running_var")})
    names.update({f"skip{j}.weight": f"skips.{j - 1}.weight" for j in range(1, len(layers))})
    unknown = sorted(k for k in state if k not in names)
    if unknown:
        raise StoreError(f"{path}: tensors this version does not know: {', '.join(unknown)}")
    missing = module.load_state_dict({names[k]: v for k, v in state.items()}, strict=False).missing_keys
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing:
        raise StoreError(f"{path}: missing tensors for a {meta['norm']} / residual={meta['residual']} network: "
                         f"{', '.join(missing)}")
    return module.eval()


def _user_module(meta: Mapping[str, str], state: Mapping[str, Any], path: Path):
    """A format-module file's network: its factory (imported from where it was, if this
    process has not loaded it) built with the run's hyperparameters, its state loaded."""
    import torch

    from .errors import SpecError
    from .usermodel import ModelData, factory

    try:
        fn = factory(meta["model"], meta.get("model_file", ""))
    except SpecError as exc:
        raise StoreError(f"{path}: its model {meta['model']} cannot be imported: {exc.problems[0]}") from None
    classes = json.loads(meta["classes"])
    shape = tuple(json.loads(meta["input_shape"]))
    data = ModelData(shape, max(len(classes), 1), tuple(classes), int(np.prod(shape)))
    with torch.random.fork_rng(devices=[]):
        module = fn(json.loads(meta["model_params"]), data)
    try:
        module.load_state_dict({k: v for k, v in state.items()})
    except RuntimeError as exc:
        raise StoreError(f"{path}: the tensors do not fit {meta['model']} built with {meta['model_params']} "
                         f"({str(exc).splitlines()[0]})") from None
    return module.eval()
