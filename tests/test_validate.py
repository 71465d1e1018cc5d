"""The shared numeric-field checks (lpgnas._validate) and the configs that use them."""

import math

import pytest

from lpgnas._validate import finite_number, is_finite_number, is_int, non_negative_int, positive_int
from lpgnas.errors import ConfigError


@pytest.mark.parametrize("value,ok", [
    (0, True), (-3, True), (10**400, True),
    (True, False), (False, False), (1.0, False), ("1", False), (None, False),
])
def test_is_int(value, ok):
    assert is_int(value) is ok


@pytest.mark.parametrize("value,ok", [
    (0, True), (-2.5, True), (1e308, True), (10**400, True),
    (math.inf, False), (-math.inf, False), (math.nan, False), (True, False), ("0.5", False), (None, False),
    ([1.0], False),
])
def test_is_finite_number(value, ok):
    assert is_finite_number(value) is ok


@pytest.mark.parametrize("check,value,ok", [
    (positive_int, 1, True), (positive_int, 7, True),
    (positive_int, 0, False), (positive_int, -1, False), (positive_int, 2.0, False), (positive_int, True, False),
    (positive_int, "3", False), (positive_int, None, False),
    (non_negative_int, 0, True), (non_negative_int, 5, True),
    (non_negative_int, -1, False), (non_negative_int, 0.0, False), (non_negative_int, False, False),
])
def test_integer_checks(check, value, ok):
    if ok:
        assert check("epochs", value) == value
    else:
        with pytest.raises(ConfigError) as err:
            check("epochs", value)
        assert err.value.field == "epochs" and repr(value) in err.value.problem


@pytest.mark.parametrize("check,words", [
    (positive_int, "must be a positive integer"),
    (non_negative_int, "must be a non-negative integer"),
])
def test_integer_messages_name_field_and_source(check, words):
    with pytest.raises(ConfigError) as err:
        check("warmup", -4, source="run.yaml")
    assert str(err.value) == f"run.yaml: warmup: {words}, got -4"


@pytest.mark.parametrize("bounds,value,ok", [
    ({}, -1e9, True), ({}, math.nan, False), ({}, math.inf, False), ({}, True, False), ({}, "1", False),
    (dict(ge=0), 0, True), (dict(ge=0), 0.0, True), (dict(ge=0), -1e-12, False),
    (dict(gt=0), 0, False), (dict(gt=0), 1e-12, True), (dict(gt=0), math.inf, False),
    (dict(ge=0, lt=1), 0.0, True), (dict(ge=0, lt=1), 0.999, True), (dict(ge=0, lt=1), 1, False),
    (dict(ge=0, lt=1), -0.1, False), (dict(ge=0, lt=1), math.nan, False),
    (dict(gt=0, le=1), 1, True), (dict(gt=0, le=1), 0, False),
    (dict(le=2), 2, True), (dict(le=2), 2.5, False), (dict(lt=2), 2, False),
])
def test_finite_number_bounds(bounds, value, ok):
    if ok:
        assert finite_number("lr", value, **bounds) == value
    else:
        with pytest.raises(ConfigError, match="lr: must be a finite number"):
            finite_number("lr", value, **bounds)


@pytest.mark.parametrize("bounds,words", [
    ({}, "must be a finite number, got"),
    (dict(ge=0), "must be a finite number >= 0, got"),
    (dict(gt=0), "must be a finite number > 0, got"),
    (dict(le=1), "must be a finite number <= 1, got"),
    (dict(ge=0, lt=1), "must be a finite number in [0, 1), got"),
    (dict(gt=0.5, le=2), "must be a finite number in (0.5, 2], got"),
])
def test_finite_number_message_states_bounds(bounds, words):
    with pytest.raises(ConfigError) as err:
        finite_number("dropout", math.nan, source="a.json", **bounds)
    assert str(err.value) == f"a.json: dropout: {words} nan"


@pytest.mark.parametrize("bounds", [dict(ge=0, gt=0), dict(le=1, lt=1)])
def test_finite_number_refuses_two_bounds_on_one_side(bounds):
    with pytest.raises(TypeError):
        finite_number("x", 0.5, **bounds)


# the call sites: the accepted values and the named field are those of the checks above

def _search_config(**kw):
    from lpgnas.search import SearchConfig

    return SearchConfig(**kw).validate()


def _differentiable(**kw):
    from lpgnas.search._differentiable import DifferentiableBackend

    return DifferentiableBackend(**kw)


def _layer_cost(**kw):
    from lpgnas.cost import LayerCost, layer_cost

    fields = dict(kind="gcn", in_dim=4, out_dim=3) | kw
    return layer_cost(LayerCost(**fields), 10, 20)


def _arch(**kw):
    import dataclasses

    from lpgnas.arch import baseline

    return dataclasses.replace(baseline("gcn", num_classes=3), **kw).validate()


@pytest.mark.parametrize("build,kw,field,words", [
    (_search_config, dict(epochs=0), "epochs", "positive integer"),
    (_search_config, dict(batch_size=True), "batch_size", "positive integer"),
    (_search_config, dict(warmup=-1), "warmup", "non-negative integer"),
    (_search_config, dict(lam=math.nan), "lambda", "finite number >= 0"),
    (_search_config, dict(lr=0.0), "lr", "finite number > 0"),
    (_search_config, dict(arch_weight_decay=-1e-3), "arch_weight_decay", "finite number >= 0"),
    (_differentiable, dict(retrain_seeds=0), "retrain_seeds", "positive integer"),
    (_differentiable, dict(retrain_epochs=2.5), "retrain_epochs", "positive integer"),
    (_differentiable, dict(lambdas=(0.1, math.inf)), "lambdas", "finite numbers >= 0"),
    (_differentiable, dict(seeds=(0, True)), "seeds", "non-negative integers"),
    (_differentiable, dict(temperature=(1.0, math.nan)), "temperature", "START, END > 0"),
    (_layer_cost, dict(heads=0), "heads", "positive integer"),
    (_layer_cost, dict(in_dim=4.0), "in_dim", "positive integer"),
    (_arch, dict(dropout=1.0), "dropout", "in [0, 1)"),
    (_arch, dict(attn_dropout=True), "attn_dropout", "in [0, 1)"),
])
def test_configs_refuse_bad_numbers(build, kw, field, words):
    with pytest.raises(ConfigError) as err:
        build(**kw)
    assert err.value.field == field and words in err.value.problem


@pytest.mark.parametrize("build,kw", [
    (_search_config, dict(epochs=1, warmup=0, seed=0, lam=0, weight_decay=0.0)),
    (_differentiable, dict(retrain_epochs=1, lambdas=(0, 2.5), seeds=(0, 3))),
    (_layer_cost, dict(in_dim=1, out_dim=1, heads=1)),
    (_arch, dict(dropout=0, input_dropout=0.99, attn_dropout=0.0)),
])
def test_configs_accept_edge_values(build, kw):
    build(**kw)
