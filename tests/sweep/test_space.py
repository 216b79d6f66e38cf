"""Reading swept parameters and overrides: choices, ranges, typed values, the grid and the points' names."""

import pytest

from perceiver.sweep.space import (Param, SpaceError, format_value, grid, parse_overrides, parse_param, parse_value,
                                   point_name)


def test_values_are_read_as_a_researcher_types_them():
    assert [parse_value(t) for t in ("3e-3", "128", "0.5", "true", "False", "null", "None", "AdamW", "'64'")] == [
        0.003, 128, 0.5, True, False, None, None, "AdamW", "64"]
    assert type(parse_value("128")) is int and type(parse_value("1e3")) is float
    assert [format_value(v) for v in (0.003, 1e-05, 128, True, None, "cpu")] == [
        "0.003", "1e-05", "128", "true", "null", "cpu"]


def test_choices_and_ranges():
    assert parse_param("optimizer.lr=1e-3,3e-3") == Param("optimizer.lr", values=(0.001, 0.003))
    assert parse_param("--model.num_channels=64, 128").values == (64, 128)
    lr = parse_param("optimizer.lr=1e-4..1e-2:log")
    assert (lr.is_range, lr.low, lr.high, lr.log, lr.integer) == (True, 1e-4, 1e-2, True, False)
    channels = parse_param("model.num_channels=32..256")
    assert channels.integer and not channels.log
    assert parse_param(lr.describe()) == lr and parse_param(channels.describe()) == channels


@pytest.mark.parametrize("text, says", [
    ("optimizer.lr", "KEY=VALUE"), ("=1,2", "KEY=VALUE"), ("optimizer.lr=", "one or more"),
    ("optimizer.lr=1,,2", "one or more"), ("optimizer.lr=1,1", "twice"), ("optimizer.lr=1e-2..1e-4", "LOW < HIGH"),
    ("optimizer.lr=0..1:log", "LOW > 0"), ("optimizer.lr=a..b", "numbers"),
])
def test_bad_parameters_say_what_to_write(text, says):
    with pytest.raises(SpaceError, match=says) as info:
        parse_param(text)
    assert info.value.text == text


def test_grid_varies_the_last_parameter_fastest_and_needs_listed_values():
    points = grid([parse_param("optimizer.lr=1e-3,3e-3"), parse_param("model.num_channels=64,128")])
    assert points == [{"optimizer.lr": 0.001, "model.num_channels": 64}, {"optimizer.lr": 0.001, "model.num_channels": 128},
                      {"optimizer.lr": 0.003, "model.num_channels": 64}, {"optimizer.lr": 0.003, "model.num_channels": 128}]
    with pytest.raises(SpaceError, match="--sampler random or tpe"):
        grid([parse_param("optimizer.lr=1e-4..1e-2")])


def test_point_names_are_short_unique_and_path_safe():
    assert point_name(2, {"optimizer.lr": 0.003, "model.num_channels": 64}) == "002-lr=0.003_num_channels=64"
    # keys that share their last part are written in full
    assert point_name(0, {"model.dropout": 0.1, "data.dropout": 0.2}) == "000-model.dropout=0.1_data.dropout=0.2"
    assert "/" not in point_name(1, {"data.source": "/data/my texts"})


def test_overrides_from_lists_dicts_and_strings():
    assert parse_overrides(["optimizer.lr=3e-3", "model.num_channels=128"]) == {"optimizer.lr": 0.003,
                                                                               "model.num_channels": 128}
    assert parse_overrides({"optimizer.lr": "3e-3", "data.source": "sample", "trainer.max_steps": 5}) == {
        "optimizer.lr": 0.003, "data.source": "sample", "trainer.max_steps": 5}
    assert parse_overrides("trainer.precision=bf16-mixed") == {"trainer.precision": "bf16-mixed"}
    assert parse_overrides(None) == {} and parse_overrides([]) == {}
    with pytest.raises(SpaceError, match="KEY=VALUE"):
        parse_overrides(["optimizer.lr 3e-3"])
