"""Every YAML the program reads is bounded (codesearch.safe_yaml): an alias bomb, a recursive
alias or a huge file in a config, a profile or a run's config.yaml is one line, exit 2, at
once."""

from __future__ import annotations

import time

import pytest

from codesearch.cli import main as cli_main
from codesearch.errors import UserError
from codesearch.safe_yaml import MAX_BYTES, read_yaml

# nine levels of nine aliases: 9**9 (387M) strings once expanded, from a 600-byte file
LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(LAUGHS)
    start = time.perf_counter()
    with pytest.raises(UserError, match="expands .* to over 100,000 YAML nodes"):
        read_yaml(path)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "recursive alias"),
        ("[" * 5000 + "]" * 5000, "nested too deeply|not valid YAML"),
        ("a: [1, 2\n", "not valid YAML"),
    ],
)
def test_unusable_yaml_is_a_user_error(tmp_path, text, message):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        read_yaml(path)


def test_a_huge_file_is_refused_by_its_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("x: " + "y" * MAX_BYTES + "\n")
    with pytest.raises(UserError, match="bytes; a config file may hold at most"):
        read_yaml(path, "config file")


def test_shared_anchors_of_a_normal_file_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("base: &b {lr: 0.1}\nrun: *b\n")
    assert read_yaml(path) == {"base": {"lr": 0.1}, "run": {"lr": 0.1}}


def test_an_alias_bomb_in_train_config_and_in_a_profile_is_one_line_exit_2(
    tiny_data, tmp_path, capsys
):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(LAUGHS)
    start = time.perf_counter()
    args = ["train", "--data", str(tiny_data), "--config", str(bomb), "--out", str(tmp_path / "r")]
    assert cli_main(args) == 2
    assert cli_main(["reproduce", str(bomb), "--check"]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert err.count("YAML nodes") == 2 and "Traceback" not in err
    assert not (tmp_path / "r").exists()
