"""The peer: the idiomatic Optuna + PyTorch loop, as Optuna's own PyTorch example writes it
(one trial at a time, a model, an optimizer and a DataLoader per trial, the validation
accuracy reported each epoch for the pruner). Written here, after that example; nothing
of tunebook is used but the dataset's arrays (the same split tunebook trains on).

    python benchmarks/peers/optuna_loop.py --trials 30 --sampler-seed 0 [--pruner median] [--device cuda]

The search space is the one ``benchmarks/search_vs_peer.py`` gives tunebook: depth 1–3,
one width for every layer 32–512 (log), lr 1e-4–1e-1 (log), dropout 0–0.5, the optimizer
adam / sgd with momentum 0.9 / rmsprop; batch 64, 3 epochs, 1 seed. Prints one JSON line:
wall seconds, the best validation accuracy and its parameters.
"""

from __future__ import annotations

import argparse
import json
import time

import optuna
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

BATCH, EPOCHS = 64, 3


def define_model(trial, n_in: int, n_out: int) -> nn.Module:
    n_layers = trial.suggest_int("depth", 1, 3)
    width = trial.suggest_int("width", 32, 512, log=True)
    p = trial.suggest_float("dropout", 0.0, 0.5)
    layers, in_features = [], n_in
    for _ in range(n_layers):
        layers += [nn.Linear(in_features, width), nn.ReLU(), nn.Dropout(p)]
        in_features = width
    layers.append(nn.Linear(in_features, n_out))
    return nn.Sequential(*layers)


def objective(trial, data, device: str = "cpu") -> float:
    x_train, y_train, x_val, y_val = data
    torch.manual_seed(trial.number)
    model = define_model(trial, x_train.shape[1], int(y_train.max()) + 1).to(device)
    name = trial.suggest_categorical("optimizer", ["adam", "momentum", "rmsprop"])
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    if name == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    elif name == "momentum":
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optimizer = torch.optim.RMSprop(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=BATCH, shuffle=True)
    accuracy = 0.0
    for epoch in range(EPOCHS):
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val.to(device)).argmax(1) == y_val.to(device)).float().mean().item()
        trial.report(accuracy, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return accuracy


PRUNERS = {"none": lambda: optuna.pruners.NopPruner(), "median": lambda: optuna.pruners.MedianPruner(),
           "halving": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--sampler-seed", type=int, default=0)
    ap.add_argument("--pruner", choices=("none", "median", "halving"), default="none",
                    help="Optuna's MedianPruner, or its SuccessiveHalvingPruner (rungs at 1, 3, 9 epochs, "
                         "reduction factor 3)")
    ap.add_argument("--prune", action="store_const", const="median", dest="pruner", help="--pruner median")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the example's batches moved to it)")
    args = ap.parse_args()
    from tunebook.data import load_dataset  # the arrays only: the same split tunebook trains on

    ds = load_dataset("fashion-mnist", validation=0.1, split_seed=0)
    data = tuple(torch.from_numpy(a) for a in (ds.x_train, ds.y_train, ds.x_val, ds.y_val))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t0 = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.sampler_seed),
                                pruner=PRUNERS[args.pruner]())
    study.optimize(lambda t: objective(t, data, args.device), n_trials=args.trials)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "best": study.best_value, "params": study.best_params,
                      "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)}))


if __name__ == "__main__":
    main()
