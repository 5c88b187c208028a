"""Tests for nerwin.config: defaults, YAML files, --set overrides, validation."""

import re
from pathlib import Path

import pytest

from nerwin.config import (
    CHOICES,
    Config,
    DataConfig,
    FeaturesConfig,
    ModelConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    parse_override,
)
from nerwin.errors import ConfigError, NerwinError


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args) -> str:
    """The message of the ConfigError that load_config(*args) raises."""
    with pytest.raises(ConfigError) as caught:
        load_config(*args)
    return str(caught.value)


# -- defaults ---------------------------------------------------------------


def test_defaults_load_without_a_file():
    config = load_config(None)
    assert config == Config()
    assert config.output == "runs/sample"
    assert config.data == DataConfig()
    assert config.data.dir == "data/sample"
    assert config.data.scheme == "auto"
    assert config.features.window == 2
    assert config.features.word_dim == 50
    assert config.model.hidden == 300
    assert config.model.activation == "tanh"
    assert config.train.lr == 0.001
    assert isinstance(config.train.lr, float)
    assert config.train.epochs == 20


def test_defaults_are_fresh_objects():
    first, second = load_config(None), load_config(None)
    first.train.epochs = 99
    assert second.train.epochs == 20
    assert Config().train.epochs == 20


def test_the_shipped_configs_load():
    for path in sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")):
        assert isinstance(load_config(path), Config), path


# -- a YAML file ---------------------------------------------------------------


def test_file_overrides_only_the_keys_it_names(tmp_path):
    path = write(
        tmp_path,
        "output: runs/x\nmodel:\n  hidden: 64\n  activation: relu\ntrain:\n  lr: 0.01\n",
    )
    config = load_config(path)
    assert config.output == "runs/x"
    assert config.model == ModelConfig(hidden=64, activation="relu")
    assert config.train == TrainConfig(lr=0.01)
    assert config.data == DataConfig()
    assert config.features == FeaturesConfig()


def test_file_path_may_be_a_string(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 4\n")
    assert load_config(str(path)).train.epochs == 4


def test_empty_file_gives_the_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()
    assert load_config(write(tmp_path, "# only a comment\n")) == Config()


def test_int_in_file_is_accepted_for_a_float(tmp_path):
    config = load_config(write(tmp_path, "train:\n  lr: 1\n"))
    assert config.train.lr == 1.0
    assert isinstance(config.train.lr, float)


def test_null_in_file_is_the_empty_string_for_a_str(tmp_path):
    config = load_config(write(tmp_path, "data:\n  dev:\n  test: null\n"))
    assert config.data.dev == ""
    assert config.data.test == ""


# -- --set overrides ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train.epochs=7", {"train": {"epochs": 7}}),
        ("train.lr=0.01", {"train": {"lr": 0.01}}),
        ("train.lr=1.0e-3", {"train": {"lr": 0.001}}),
        ("model.activation=relu", {"model": {"activation": "relu"}}),
        ("model.dropout=.5", {"model": {"dropout": 0.5}}),
        ("data.dev=", {"data": {"dev": None}}),
        ("data.dev=null", {"data": {"dev": None}}),
        ("data.dir='a b'", {"data": {"dir": "a b"}}),
        ("data.dir=x=y", {"data": {"dir": "x=y"}}),
        ("flag=true", {"flag": True}),
        (" output = runs/y", {"output": "runs/y"}),
        ("a.b.c=[1, 2]", {"a": {"b": {"c": [1, 2]}}}),
    ],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_parse_override_types():
    assert type(parse_override("train.epochs=7")["train"]["epochs"]) is int
    assert type(parse_override("train.lr=0.5")["train"]["lr"]) is float
    # yaml.safe_load follows YAML 1.1: a float needs a dot, so "1e-3" stays a string.
    assert parse_override("train.lr=1e-3") == {"train": {"lr": "1e-3"}}


@pytest.mark.parametrize("text", ["train.lr", "=3", " =3", ""])
def test_parse_override_needs_key_and_value(text):
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override(text)


def test_parse_override_rejects_invalid_yaml():
    with pytest.raises(ConfigError) as caught:
        parse_override("train.lr=[1")
    assert str(caught.value) == "--set 'train.lr=[1': the value is not valid YAML"


def test_overrides_apply_in_order():
    config = load_config(None, ("train.epochs=3", "model.hidden=50", "train.epochs=4"))
    assert config.train.epochs == 4
    assert config.model.hidden == 50
    assert config.train.lr == 0.001


def test_override_lr_as_decimal():
    config = load_config(None, ("train.lr=0.001",))
    assert config.train.lr == 0.001
    config = load_config(None, ("train.lr=1.0e-3",))
    assert config.train.lr == 0.001


@pytest.mark.parametrize("value", ["1e-3", "1E-3", "1e-03"])
def test_override_lr_in_exponent_notation(value):
    config = load_config(None, (f"train.lr={value}",))
    assert config.train.lr == 0.001


def test_file_lr_in_exponent_notation(tmp_path):
    assert load_config(write(tmp_path, "train:\n  lr: 1e-3\n")).train.lr == 0.001


def test_a_string_that_is_no_number_is_rejected_for_a_float():
    assert config_error(None, ("train.lr=fast",)) == "train.lr: expected float, got 'fast'"


def test_command_line_wins_over_file(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 7\n  lr: 0.5\nmodel:\n  hidden: 10\n")
    config = load_config(path, ("train.epochs=2", "output=runs/z"))
    assert config.train.epochs == 2
    assert config.train.lr == 0.5
    assert config.model.hidden == 10
    assert config.output == "runs/z"


def test_override_may_fix_a_file_value_that_would_not_validate(tmp_path):
    # Validation runs once, after the overrides.
    path = write(tmp_path, "model:\n  activation: sigmoid\n")
    assert load_config(path, ("model.activation=relu",)).model.activation == "relu"


# -- unknown keys ---------------------------------------------------------------


def test_unknown_nested_key_in_file_names_file_line_and_key(tmp_path):
    path = write(
        tmp_path,
        "# comment\ndata:\n  dir: data/sample\nmodel:\n  hidden: 10\n  hiden: 20\n",
    )
    assert config_error(path) == f"{path}:6: unknown config key 'model.hiden'"


def test_unknown_top_level_key_in_file_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 2\n\ntrainer:\n  epochs: 3\n")
    assert config_error(path) == f"{path}:4: unknown config key 'trainer'"


def test_unknown_key_in_flow_mapping_has_its_line(tmp_path):
    path = write(tmp_path, "output: x\nmodel: {hidden: 3, size: 4}\n")
    assert config_error(path) == f"{path}:2: unknown config key 'model.size'"


def test_unknown_key_via_set():
    assert config_error(None, ("train.nope=1",)) == "unknown config key 'train.nope'"
    assert config_error(None, ("nope.x=1",)) == "unknown config key 'nope'"
    assert config_error(None, ("nope=1",)) == "unknown config key 'nope'"


def test_value_for_a_section():
    assert config_error(None, ("train=3",)) == "'train' must be a mapping of keys to values"


def test_section_as_scalar_in_file_names_file_and_line(tmp_path):
    path = write(tmp_path, "output: x\nmodel: 3\n")
    assert config_error(path) == f"{path}:2: 'model' must be a mapping of keys to values"


def test_config_errors_are_nerwin_errors():
    with pytest.raises(NerwinError):
        load_config(None, ("nope=1",))


# -- wrong types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=three", "train.epochs: expected int, got 'three'"),
        ("train.epochs=true", "train.epochs: expected int, got True"),
        ("train.epochs=3.0", "train.epochs: expected int, got 3.0"),
        ("train.epochs=[3]", "train.epochs: expected int, got [3]"),
        ("train.lr=fast", "train.lr: expected float, got 'fast'"),
        ("train.lr=false", "train.lr: expected float, got False"),
        ("model.activation=1", "model.activation: expected str, got 1"),
        ("model.activation=true", "model.activation: expected str, got True"),
        ("train.lr.x=1", "train.lr: expected float, got {'x': 1}"),
    ],
)
def test_wrong_type_via_set_names_the_key(override, message):
    assert config_error(None, (override,)) == message


def test_wrong_type_in_file_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "model:\n  hidden: 10\ntrain:\n  seed: 1\n  epochs: many\n")
    assert config_error(path) == f"{path}:5: train.epochs: expected int, got 'many'"


def test_bool_for_int_in_file(tmp_path):
    path = write(tmp_path, "model:\n  hidden: yes\n")
    assert config_error(path) == f"{path}:2: model.hidden: expected int, got True"


# -- choices and ranges ------------------------------------------------------------


def test_bad_activation():
    assert config_error(None, ("model.activation=sigmoid",)) == (
        "model.activation: 'sigmoid' is not one of tanh, relu, hardtanh"
    )


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_choice_is_checked(key):
    message = config_error(None, (f"{key}=nonsense",))
    assert message == f"{key}: 'nonsense' is not one of {', '.join(CHOICES[key])}"


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_every_listed_choice_is_accepted(key):
    section, name = key.split(".")
    for option in CHOICES[key]:
        config = load_config(None, (f"{key}={option}",))
        assert getattr(getattr(config, section), name) == option


def test_choice_error_from_a_file_names_the_key(tmp_path):
    path = write(tmp_path, "model:\n  activation: sigmoid\n")
    assert "model.activation: 'sigmoid' is not one of" in config_error(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.hidden=0", "model.hidden: must be positive, got 0"),
        ("model.hidden=-5", "model.hidden: must be positive, got -5"),
        ("train.epochs=0", "train.epochs: must be positive, got 0"),
        ("train.batch_size=0", "train.batch_size: must be positive, got 0"),
        ("train.lr=0", "train.lr: must be positive, got 0.0"),
        ("train.lr=-0.1", "train.lr: must be positive, got -0.1"),
        ("features.word_dim=0", "features.word_dim: must be positive, got 0"),
        ("features.window=-1", "features.window: must not be negative, got -1"),
        ("features.caps_dim=-1", "features.caps_dim: must not be negative, got -1"),
        ("features.min_count=-2", "features.min_count: must not be negative, got -2"),
        ("model.l2=-0.5", "model.l2: must not be negative, got -0.5"),
        ("train.patience=-1", "train.patience: must not be negative, got -1"),
    ],
)
def test_out_of_range_values(override, message):
    assert config_error(None, (override,)) == message


@pytest.mark.parametrize(
    "override",
    [
        "features.window=0",
        "features.caps_dim=0",
        "features.suffix_dim=0",
        "model.l2=0",
        "train.patience=0",
        "train.lr_decay=0",
    ],
)
def test_zero_is_allowed_where_non_negative(override):
    section, key = override.partition("=")[0].split(".")
    assert getattr(getattr(load_config(None, (override,)), section), key) == 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.dropout=1", "model.dropout: must be in [0, 1), got 1.0"),
        ("model.dropout=1.5", "model.dropout: must be in [0, 1), got 1.5"),
        ("model.dropout=-0.1", "model.dropout: must be in [0, 1), got -0.1"),
        ("features.unk_replace=1.0", "features.unk_replace: must be in [0, 1), got 1.0"),
        ("features.unk_replace=-1", "features.unk_replace: must be in [0, 1), got -1.0"),
    ],
)
def test_probability_out_of_range(override, message):
    assert config_error(None, (override,)) == message


def test_probability_in_range():
    config = load_config(None, ("model.dropout=0", "features.unk_replace=0.99"))
    assert config.model.dropout == 0.0
    assert config.features.unk_replace == 0.99


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.momentum=1", "train.momentum: must be in [0, 1), got 1.0"),
        ("train.momentum=42", "train.momentum: must be in [0, 1), got 42.0"),
        ("train.momentum=-5", "train.momentum: must be in [0, 1), got -5.0"),
    ],
)
def test_momentum_out_of_range(override, message):
    assert config_error(None, (override,)) == message


@pytest.mark.parametrize("value", [0, 0.5, 0.99])
def test_momentum_in_range(value):
    assert load_config(None, (f"train.momentum={value}",)).train.momentum == value


# -- non-finite numbers: nan and inf pass every range check, so they are refused first --


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (".nan", "nan"),
        ("nan", "'nan'"),
        (".inf", "inf"),
        ("-.inf", "-inf"),
        ("inf", "'inf'"),
        ("-Infinity", "'-Infinity'"),
        ("1e999", "'1e999'"),
        pytest.param("1" + "0" * 400, "1" + "0" * 400, id="int-beyond-float"),
    ],
)
@pytest.mark.parametrize(
    "key", ["train.lr", "train.momentum", "model.l2", "model.binary_weight", "features.init_scale"]
)
def test_non_finite_float_via_set_names_the_key(key, value, shown):
    assert config_error(None, (f"{key}={value}",)) == f"{key}: must be a finite number, got {shown}"


def test_non_finite_float_in_file_names_file_line_and_key(tmp_path):
    path = write(tmp_path, "model:\n  hidden: 10\n  dropout: .NaN\n")
    assert config_error(path) == f"{path}:3: model.dropout: must be a finite number, got nan"


def test_non_finite_float_in_a_stored_config():
    with pytest.raises(ConfigError, match=r"^train\.lr: must be a finite number, got inf$"):
        config_from_dict({"train": {"lr": float("inf")}})


def test_unknown_encoding():
    assert config_error(None, ("data.encoding=klingon",)) == (
        "data.encoding: unknown text encoding 'klingon'"
    )


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1", "cp1252", "UTF8"])
def test_known_encodings(encoding):
    assert load_config(None, (f"data.encoding={encoding}",)).data.encoding == encoding


# -- bad files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("model:\n  hidden: 3\n   activation: relu\n", 3, "mapping values are not allowed here"),
        ("model:\n\thidden: 3\n", 2, "found character '\\t' that cannot start any token"),
        ("a: b: c\n", 1, "mapping values are not allowed here"),
    ],
)
def test_invalid_yaml_names_file_and_line(tmp_path, text, line, problem):
    path = write(tmp_path, text)
    assert config_error(path) == f"{path}:{line}: not valid YAML ({problem})"


def test_unclosed_flow_mapping_names_file_and_a_line(tmp_path):
    path = write(tmp_path, "output: x\nmodel: {hidden: 3\n")
    message = config_error(path)
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: not valid YAML \(.+\)", message), message


def test_missing_config_file(tmp_path):
    path = tmp_path / "absent.yaml"
    assert config_error(path) == f"{path}: cannot read config (No such file or directory)"


def test_config_file_is_a_directory(tmp_path):
    assert config_error(tmp_path).startswith(f"{tmp_path}: cannot read config (")


# -- config_from_dict and digest ---------------------------------------------------------


def test_config_from_dict_round_trips_the_defaults():
    config = Config()
    assert config_from_dict(config.to_dict()) == config


def test_config_from_dict_round_trips_a_changed_config():
    config = load_config(None, ("model.activation=relu", "features.suffix_dim=3", "data.dev="))
    again = config_from_dict(config.to_dict())
    assert again == config
    assert again.to_dict() == config.to_dict()


def test_config_from_dict_fills_in_defaults():
    assert config_from_dict({"train": {"epochs": 2}}) == load_config(None, ("train.epochs=2",))


def test_config_from_dict_validates():
    with pytest.raises(ConfigError, match=r"^model\.hidden: must be positive, got 0$"):
        config_from_dict({"model": {"hidden": 0}})
    with pytest.raises(ConfigError, match=r"^unknown config key 'model\.size'$"):
        config_from_dict({"model": {"size": 3}})


def test_to_dict_is_nested_plain_data():
    values = Config().to_dict()
    assert set(values) == {"output", "data", "features", "model", "train"}
    assert values["train"]["lr"] == 0.001
    assert values["model"]["activation"] == "tanh"


def test_digest_is_stable():
    digest = Config().digest()
    assert re.fullmatch(r"[0-9a-f]{16}", digest)
    assert load_config(None).digest() == digest
    assert config_from_dict(Config().to_dict()).digest() == digest
    assert Config().digest() == digest


@pytest.mark.parametrize(
    "override", ["train.lr=0.002", "train.seed=2", "model.activation=relu", "output=elsewhere"]
)
def test_digest_changes_with_any_value(override):
    assert load_config(None, (override,)).digest() != Config().digest()


def test_digest_ignores_how_a_value_was_given(tmp_path):
    path = write(tmp_path, "train:\n  lr: 1\n")
    assert load_config(path).digest() == load_config(None, ("train.lr=1.0",)).digest()


@pytest.mark.parametrize("value", ["!!python/name:os.system", "!custom 3"])
def test_yaml_tag_is_a_config_error(tmp_path, value):
    path = write(tmp_path, f"train:\n  lr: {value}\n")
    assert config_error(path).startswith(f"{path}:2:")


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("model:\n  hidden: 1\n  hidden: 2\n", 3, "model.hidden"),
        ("model: {hidden: 1, hidden: 2}\n", 1, "model.hidden"),
        ("model:\n  hidden: 1\ntrain:\n  lr: 0.1\nmodel:\n  dropout: 0.1\n", 5, "model"),
        ("output: a\noutput: b\n", 2, "output"),
    ],
)
def test_duplicate_key_names_file_line_and_key(tmp_path, text, line, key):
    path = write(tmp_path, text)
    assert config_error(path) == f"{path}:{line}: duplicate key '{key}'"


def test_same_name_at_two_levels_is_no_duplicate(tmp_path):
    path = write(tmp_path, "data:\n  train: t.conll\ntrain:\n  epochs: 2\n")
    config = load_config(path)
    assert (config.data.train, config.train.epochs) == ("t.conll", 2)


def test_top_level_list_message(tmp_path):
    path = write(tmp_path, "- a\n- b\n")
    assert config_error(path) == f"{path}: the top level must be a mapping of keys to values"
