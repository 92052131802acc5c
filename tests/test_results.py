"""Filters of `ls --where` / `export --where`: units and unknown columns said, not silently empty."""

from __future__ import annotations

import pytest

from tunebook.errors import SpecError
from tunebook.results import filter_rows, parse_where

ROWS = [{"val_acc": 0.86, "lr": 0.001, "optimizer": "adam"}, {"val_acc": 0.84, "lr": 0.01, "optimizer": "sgd"}]


def test_a_percentage_is_a_fraction():
    assert filter_rows(ROWS, ["val_acc>85%"]) == [ROWS[0]]
    assert filter_rows(ROWS, ["val_acc>0.85"]) == [ROWS[0]]


@pytest.mark.parametrize("where, message", [
    ("val_acc>85", "--where 'val_acc>85': val_acc is a fraction from 0 to 1, so 85 matches nothing; write 0.85 or 85%"),
    ("lr>5%", "--where 'lr>5%': a percentage fits only val_acc, test_acc, train_acc (fractions), not 'lr'"),
    ("val_acc>x%", "--where 'val_acc>x%': 'x%' is not a percentage"),
])
def test_a_number_in_the_wrong_unit_is_refused(where, message):
    with pytest.raises(SpecError) as exc:
        parse_where(where)
    assert exc.value.problems == [message]


def test_an_unknown_column_gets_did_you_mean():
    with pytest.raises(SpecError) as exc:
        parse_where("val_ac>0.8")
    assert exc.value.problems[0].startswith("--where 'val_ac>0.8': unknown column 'val_ac'; did you mean val_acc")
