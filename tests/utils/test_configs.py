from dataclasses import dataclass, field

import pytest
import yaml

from spin_diff.fitting.config import Config
from spin_diff.recipes import recipe_path
from spin_diff.utils.configs import ConfigError, load_config, parse_override, save_config


def test_defaults_file_and_overrides_apply_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nbody:\n  num_betas: 8\n  model_path: /models\n")
    config = load_config(Config, path, ["body.num_betas=6", "device=cuda:1"])
    assert config.seed == 3
    assert config.body.num_betas == 6  # the override wins over the file
    assert config.body.model_path == "/models"
    assert config.device == "cuda:1"
    assert config.body.gender == "neutral"  # untouched default


def test_shipped_default_config_matches_dataclass_defaults():
    assert load_config(Config, recipe_path("default")) == Config()


@pytest.mark.parametrize(
    "override, key",
    [("body.nmu_betas=3", "body.nmu_betas"), ("bodyy.num_betas=3", "bodyy")],
)
def test_unknown_key_is_an_error_naming_it(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(Config, None, [override])


def test_unknown_key_in_file_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("body:\n  gendre: male\n")
    with pytest.raises(ConfigError, match=r"body\.gendre"):
        load_config(Config, path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("body.num_betas=ten", "body.num_betas"),
        ("body.num_betas=1.5", "integer"),
        ("body.gender=robot", "one of"),
        ("seed=true", "integer"),
    ],
)
def test_wrong_types_are_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Config, None, [override])


def test_override_values_parse_as_yaml():
    assert parse_override("a.b=0.01") == {"a": {"b": 0.01}}
    assert parse_override("a=[1, 2]") == {"a": [1, 2]}
    assert parse_override("a=null") == {"a": None}
    with pytest.raises(ConfigError):
        parse_override("novalue")


def test_nested_lists_tuples_and_floats_coerce():
    @dataclass
    class Inner:
        weights: tuple[float, ...] = (1.0,)
        names: list[str] = field(default_factory=list)

    @dataclass
    class Outer:
        inner: Inner = field(default_factory=Inner)
        rate: float = 0.1

    config = load_config(Outer, None, ["inner.weights=[1, 2.5]", "rate=1", "inner.names=[a, b]"])
    assert config.inner.weights == (1.0, 2.5) and isinstance(config.rate, float)
    # YAML 1.1 reads 1e-2 as text; a float field still takes it as the number users mean
    assert load_config(Outer, None, ["rate=1e-2"]).rate == 0.01
    with pytest.raises(ConfigError, match="rate"):
        load_config(Outer, None, ["rate=fast"])
    with pytest.raises(ConfigError, match=r"inner\.names\[1\]"):
        load_config(Outer, None, ["inner.names=[a, 3]"])


def test_missing_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Config, tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("body: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot parse"):
        load_config(Config, bad)


def test_saved_config_round_trips(tmp_path):
    config = load_config(Config, None, ["seed=7", "body.num_betas=5"])
    path = save_config(config, tmp_path / "out" / "config.yaml")
    assert load_config(Config, path) == config
    assert yaml.safe_load(path.read_text())["body"]["num_betas"] == 5


def test_extends_reads_the_base_first_then_the_file(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 3\nbody:\n  num_betas: 8\n  model_path: /base\n")
    (tmp_path / "middle.yaml").write_text("extends: base.yaml\nbody:\n  model_path: /middle\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "top.yaml").write_text("extends: ../middle.yaml\nseed: 5\n")
    config = load_config(Config, sub / "top.yaml", ["body.num_betas=6"])
    assert (config.seed, config.body.num_betas, config.body.model_path) == (5, 6, "/middle")
    # the same values as the three files merged by hand, with no extends key left over
    assert load_config(Config, sub / "top.yaml") == load_config(
        Config, [tmp_path / "base.yaml"], ["body.model_path=/middle", "seed=5"]
    )


@pytest.mark.parametrize(
    "files, message",
    [
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "extends itself"),
        ({"a.yaml": "extends: nowhere.yaml\n"}, "extends nowhere.yaml, which is not found"),
        ({"a.yaml": "extends: [b.yaml]\n"}, "extends must name one YAML file"),
    ],
)
def test_broken_extends_is_a_one_line_error(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(Config, tmp_path / "a.yaml")
