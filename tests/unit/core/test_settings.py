"""Every layer of the settings, and that the order does not depend on how the file is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import ConfigError
from tasks.core.settings import DriftgateSettings, PolicySettings, load_settings


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "driftgate.yaml"
    path.write_text(f"home: {tmp_path / 'home'}\ngate:\n  alpha: 0.2\n  n_bootstrap: 300\npolicy:\n  persistence: 4\n")
    return path


def test_defaults_alone(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path)
    assert (settings.gate.alpha, settings.gate.n_bootstrap, settings.policy.persistence) == (0.05, 1000, 1)


@pytest.mark.parametrize("given", ["argument", "string argument", "DRIFTGATE_CONFIG"])
def test_file_beats_defaults(given: str, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(given, config, monkeypatch)
    assert (settings.gate.alpha, settings.gate.n_bootstrap, settings.policy.persistence) == (0.2, 300, 4)
    assert settings.home == config.parent / "home"


@pytest.mark.parametrize("given", ["argument", "string argument", "DRIFTGATE_CONFIG"])
def test_env_beats_the_file_however_the_file_is_given(
    given: str, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTGATE_GATE__ALPHA", "0.01")
    settings = _load(given, config, monkeypatch)
    assert settings.gate.alpha == 0.01
    # Nested sections merge key by key: the file's other gate and policy values survive.
    assert (settings.gate.n_bootstrap, settings.policy.persistence) == (300, 4)


@pytest.mark.parametrize("given", ["argument", "DRIFTGATE_CONFIG"])
def test_keywords_beat_env_and_file(given: str, config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTGATE_GATE__ALPHA", "0.01")
    monkeypatch.setenv("DRIFTGATE_MODEL_NAME", "from-env")
    settings = _load(given, config, monkeypatch, gate={"alpha": 0.1}, model_name="from-kwargs", home=None)
    assert (settings.gate.alpha, settings.gate.n_bootstrap, settings.model_name) == (0.1, 300, "from-kwargs")
    assert settings.home == config.parent / "home"  # None means "not given", not "unset the file's value"


def test_an_explicit_file_replaces_the_one_driftgate_config_names(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text("gate:\n  alpha: 0.3\n")
    monkeypatch.setenv("DRIFTGATE_CONFIG", str(other))
    settings = load_settings(config, home=tmp_path)
    assert (settings.gate.alpha, settings.gate.n_bootstrap) == (0.2, 300)
    assert load_settings(home=tmp_path).gate.alpha == 0.3


@pytest.mark.parametrize("given", ["argument", "DRIFTGATE_CONFIG"])
def test_a_missing_file_is_named(given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml.*does not exist"):
        _load(given, tmp_path / "missing.yaml", monkeypatch, home=tmp_path)


def test_unknown_nested_keys_are_errors_naming_the_key(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text("gate:\n  alpah: 0.05\n")
    with pytest.raises(ConfigError, match="DRIFTGATE_GATE__ALPAH"):
        load_settings(typo, home=tmp_path)
    with pytest.raises(ConfigError, match="DRIFTGATE_GATE__ALPAH"):
        load_settings(home=tmp_path, gate={"alpah": 0.05})
    monkeypatch.setenv("DRIFTGATE_GATE__ALPAH", "0.05")
    with pytest.raises(ConfigError, match="DRIFTGATE_GATE__ALPAH"):
        load_settings(home=tmp_path)
    with pytest.raises(ValueError, match="persistance"):
        PolicySettings.model_validate({"persistance": 3})


def test_a_bad_value_names_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTGATE_POLICY__PERSISTENCE", "-1")
    with pytest.raises(ConfigError, match="DRIFTGATE_POLICY__PERSISTENCE"):
        load_settings(home=tmp_path)


def _load(given: str, config: Path, monkeypatch: pytest.MonkeyPatch, **overrides: object) -> DriftgateSettings:
    if given == "DRIFTGATE_CONFIG":
        monkeypatch.setenv("DRIFTGATE_CONFIG", str(config))
        return load_settings(**overrides)
    return load_settings(str(config) if given == "string argument" else config, **overrides)


@pytest.mark.parametrize("given", ["keyword", "DRIFTGATE_HOME"])
def test_a_worker_given_only_the_home_reads_the_homes_settings_file(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployed flow gets the home, not the CLI's --config: <home>/driftgate.yaml makes them agree."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "driftgate.yaml").write_text("gate:\n  alpha: 0.01\n")
    monkeypatch.delenv("DRIFTGATE_CONFIG", raising=False)
    if given == "keyword":
        settings = load_settings(home=home)
    else:
        monkeypatch.setenv("DRIFTGATE_HOME", str(home))
        settings = load_settings()
    assert settings.gate.alpha == 0.01 and settings.home == home
    # an explicit file, or DRIFTGATE_CONFIG, still wins over the home's
    other = tmp_path / "other.yaml"
    other.write_text("gate:\n  alpha: 0.2\n")
    assert load_settings(other, home=home).gate.alpha == 0.2
    monkeypatch.setenv("DRIFTGATE_CONFIG", str(other))
    assert load_settings(home=home).gate.alpha == 0.2
