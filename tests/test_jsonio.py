"""read_json (lpgnas._jsonio) and the three readers built on it: errors name the file."""

import json
import os

import pytest

from lpgnas._jsonio import read_json
from lpgnas.errors import DataError


@pytest.mark.parametrize("content,expect,value", [
    ('{"a": [1, 2.5, null]}', None, {"a": [1, 2.5, None]}),
    ("[1, 2]", list, [1, 2]),
    ('{"b": true}', dict, {"b": True}),
    ('"caf\u00e9"', (str, int), "caf\u00e9"),
    ("3", (str, int), 3),
])
def test_reads_valid_json(tmp_path, content, expect, value):
    path = tmp_path / "doc.json"
    path.write_text(content, encoding="utf-8")
    assert read_json(path, "test file", expect=expect) == value


@pytest.mark.parametrize("content,expect,problem", [
    ("{not json", None, "not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
    ('{"a": 1,\n  "b": }', None, "at line 2, column 8"),
    ("", None, "not valid JSON (Expecting value at line 1, column 1)"),
    (b"\xff\xfe{}", None, "not UTF-8"),
    ("[1]", dict, "the test file must hold a JSON object, got a JSON array"),
    ('{"a": 1}', list, "the test file must hold a JSON array, got a JSON object"),
    ("true", (dict, list), "must hold a JSON object or array, got a JSON boolean"),
    ("null", dict, "got a JSON null"),
    ("2.5", str, "got a JSON number"),
])
def test_bad_content_is_data_error_naming_file(tmp_path, content, expect, problem):
    path = tmp_path / "doc.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_json(path, "test file", expect=expect)
    assert err.value.path == str(path) and problem in err.value.problem


@pytest.mark.parametrize("missing,problem", [
    (None, "no such test file"),
    ("no such file: not a run directory", "no such file: not a run directory"),
])
def test_missing_file(tmp_path, missing, problem):
    path = tmp_path / "nope.json"
    with pytest.raises(DataError) as err:
        read_json(path, "test file", missing=missing)
    assert str(err.value) == f"{path}: {problem}"


def test_folder_is_data_error(tmp_path):
    with pytest.raises(DataError, match="is a folder, not a test file"):
        read_json(tmp_path, "test file")


def test_unreadable_path_is_data_error(tmp_path):
    (tmp_path / "plain").write_text("{}")
    path = tmp_path / "plain" / "doc.json"  # a file's "child": an OSError other than "not found"
    with pytest.raises(DataError, match="cannot read the test file") as err:
        read_json(path, "test file")
    assert err.value.path == str(path)


# the three call sites keep their error type and name the file

def _read_architecture(path):
    from lpgnas.arch import read_architecture

    return read_architecture(path)


def _read_tune(path):
    from lpgnas.search._tune import read_tune

    return read_tune(os.path.dirname(path))


def _quant_config(path):
    import argparse

    from lpgnas.cli import _quant_config

    return _quant_config(argparse.Namespace(quant=None, quant_config=str(path)))


@pytest.mark.parametrize("reader,name,missing_words", [
    (_read_architecture, "arch.json", "no such architecture file"),
    (_read_tune, "tune.json", "not a tune run directory"),
    (_quant_config, "quant.json", "no such quantisation config file"),
])
def test_call_sites_raise_data_error_naming_file(tmp_path, reader, name, missing_words):
    path = tmp_path / name
    with pytest.raises(DataError) as err:
        reader(path)
    assert err.value.path == str(path) and missing_words in err.value.problem
    path.write_text('{\n  "schema": ,\n}')
    with pytest.raises(DataError) as err:
        reader(path)
    assert err.value.path == str(path) and "not valid JSON" in err.value.problem and "line 2, column" in str(err.value)


def test_cli_quant_config_bad_json_exits_2(capsys, tmp_path):
    from lpgnas import cli

    path = tmp_path / "q.json"
    path.write_text(json.dumps({"default": {"method": "fp32"}})[:-3])
    code = cli.main(["train", "--dataset", "synthetic:nodes=20", "--quant-config", str(path), "--seeds", "1"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "not valid JSON" in err and "Traceback" not in err
