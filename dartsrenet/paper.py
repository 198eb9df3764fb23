"""The paper's reported figures (Table 1; docs/architecture.md §7), for side-by-side comparison."""

from __future__ import annotations

MODELS: tuple[str, ...] = ("vanilla", "sigmoid_weighting", "directional_weight_sharing", "gru", "lstm")
"""Table 1's models in the paper's row order: the three DartsReNet variants, then the baselines."""

MODEL_LABELS: dict[str, str] = {
    "vanilla": "Vanilla - DartsReNet",
    "sigmoid_weighting": "Sigmoid Weighting - DartsReNet",
    "directional_weight_sharing": "Directional Weight Sharing - DartsReNet",
    "gru": "Baseline ReNet with GRU",
    "lstm": "Baseline ReNet with LSTM",
}

PARAMS_MILLIONS: dict[str, float] = {
    "vanilla": 6.8,
    "sigmoid_weighting": 6.8,
    "directional_weight_sharing": 4.0,
    "gru": 4.8,
    "lstm": 6.0,
}
"""Parameters of the CIFAR-10 evaluation networks (10 classes), in millions, as printed."""

ACCURACY_PERCENT: dict[str, dict[str, float]] = {
    "cifar10": {
        "vanilla": 90.26,
        "sigmoid_weighting": 90.56,
        "directional_weight_sharing": 91.00,
        "gru": 75.30,
        "lstm": 74.94,
    },
    "svhn": {
        "vanilla": 97.43,
        "sigmoid_weighting": 97.04,
        "directional_weight_sharing": 96.91,
        "gru": 95.16,
        "lstm": 94.10,
    },
}
"""Test accuracy (%) per dataset and model."""
