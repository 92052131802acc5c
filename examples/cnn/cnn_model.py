"""A small CNN for tunebook's `[study] model = "cnn_model:build"` (examples/cnn/cnn.toml).

`build(hp, data)` returns one copy for a trial: `hp` holds the values of the hyperparameters
declared below, `data` the input's shape (1×28×28 for Fashion-MNIST) and the outputs.
tunebook builds one copy per trial under the trial's seed and trains copies of one shape
as one stacked computation (torch.func).
"""

from torch import nn

import tunebook


@tunebook.hyperparameters(channels=tunebook.Int(2, 64, default=8),
                          head_dropout=tunebook.Float(0.0, 0.8, default=0.0))
def build(hp, data):
    c, h, w = data.input_shape
    k = hp["channels"]
    return nn.Sequential(
        nn.Conv2d(c, k, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(k, 2 * k, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(hp["head_dropout"]), nn.Linear(2 * k * (h // 4) * (w // 4), data.n_outputs))
