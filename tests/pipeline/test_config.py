"""Configuration files: the shipped ones load, and every bad one is refused with a
message that says which file, which field, and what was expected there.

An operator edits these YAML files by hand; an error that does not point at the
file and the field sends them hunting through every line on the plant.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from pipeline.config import (
    DEFAULT_CONFIG_DIR,
    AppConfig,
    LineConfig,
    load_all_lines,
    load_app_config,
    load_line,
    load_line_config,
)
from pipeline.errors import ConfigError

GOOD_LINE: dict[str, Any] = {
    "line_id": "press1",
    "name": "Press line 1",
    "schedule": {"interval_seconds": 30},
    "batch_size": 16,
    "cameras": [
        {"camera_id": "top", "source": "sim://press1?seed=3", "mm_per_px": 0.5},
        {"camera_id": "side", "source": "/data/side"},
    ],
    "specialists": {"anomaly": {"model": "press-anomaly"}},
}


def make_config_dir(root: Path, lines: dict[str, Any], app: Any = None) -> Path:
    """A config folder with qcflow.yaml and lines/<stem>.yaml for each entry.

    A ``str`` value is written verbatim (for YAML syntax errors); anything else is dumped.
    """
    config = root / "config"
    (config / "lines").mkdir(parents=True)
    (config / "qcflow.yaml").write_text(yaml.safe_dump(app if app is not None else {"lines_dir": "lines"}))
    for stem, content in lines.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        (config / "lines" / f"{stem}.yaml").write_text(text)
    return config


def line_with(**changes: Any) -> dict[str, Any]:
    line = copy.deepcopy(GOOD_LINE)
    line.update(changes)
    return line


def load_error(tmp_path: Path, content: Any, stem: str = "press1") -> tuple[str, Path]:
    """Load one line file that must be refused; returns the message and the file's path."""
    config = make_config_dir(tmp_path, {stem: content})
    path = config / "lines" / f"{stem}.yaml"
    with pytest.raises(ConfigError) as info:
        load_line(config, stem)
    return str(info.value), path


# --- the shipped configuration ---------------------------------------------------------------


def test_shipped_app_config_loads() -> None:
    app = load_app_config(DEFAULT_CONFIG_DIR)
    assert isinstance(app, AppConfig)
    assert app.lines_dir == "lines"
    assert app.generators.enabled is False  # synthetic generation stays off unless turned on
    assert (app.dashboard.host, app.dashboard.port) == ("127.0.0.1", 8000)


def test_shipped_lines_load_and_include_the_demo_line() -> None:
    lines = load_all_lines(DEFAULT_CONFIG_DIR)
    assert "demo" in [line.line_id for line in lines]
    for line in lines:  # every shipped file is named after its line
        assert (DEFAULT_CONFIG_DIR / "lines" / f"{line.line_id}.yaml").is_file()


def test_shipped_demo_line_has_the_documented_settings() -> None:
    demo = load_line(DEFAULT_CONFIG_DIR, "demo")
    assert isinstance(demo, LineConfig)
    assert demo.schedule.interval_seconds == 60 and demo.schedule.cron is None
    assert demo.batch_size == 512
    cam = demo.camera("cam1")
    assert cam.source.startswith("sim://") and cam.mm_per_px == 0.25
    assert demo.specialists.anomaly.enabled and demo.specialists.anomaly.model == "demo-anomaly"
    assert demo.specialists.anomaly.review_threshold is None


# --- a good temporary configuration ------------------------------------------------------------


def test_good_line_file_in_a_temporary_config_dir_loads(tmp_path: Path) -> None:
    both = line_with(specialists={"anomaly": {"model": "m", "review_threshold": 0.4, "fail_threshold": 0.9}})
    config = make_config_dir(tmp_path, {"press1": both, "press2": line_with(line_id="press2")})
    lines = load_all_lines(config)
    assert [line.line_id for line in lines] == ["press1", "press2"]
    press1 = load_line(config, "press1")
    assert [c.camera_id for c in press1.cameras] == ["top", "side"]
    assert press1.camera("side").mm_per_px is None
    assert (press1.specialists.anomaly.review_threshold, press1.specialists.anomaly.fail_threshold) == (
        0.4,
        0.9,
    )


def test_lines_dir_setting_is_followed(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path, {}, app={"lines_dir": "elsewhere"})
    (config / "elsewhere").mkdir()
    (config / "elsewhere" / "press1.yaml").write_text(yaml.safe_dump(GOOD_LINE))
    assert [line.line_id for line in load_all_lines(config)] == ["press1"]


def test_loaded_config_is_frozen(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path, {"press1": GOOD_LINE})
    line = load_line(config, "press1")
    with pytest.raises(ValidationError, match="frozen"):
        line.batch_size = 5  # type: ignore[misc]


# --- bad line files --------------------------------------------------------------------------


def test_unknown_key_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, line_with(bacth_size=8))
    assert str(path) in message
    assert "bacth_size" in message
    assert "Extra inputs are not permitted" in message


def test_unknown_nested_key_names_the_full_field_path(tmp_path: Path) -> None:
    cameras = copy.deepcopy(GOOD_LINE["cameras"])
    cameras[1]["fps"] = 30
    message, path = load_error(tmp_path, line_with(cameras=cameras))
    assert str(path) in message
    assert "cameras.1.fps" in message


def test_wrong_type_names_field_expected_type_and_value(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, line_with(batch_size="many"))
    assert str(path) in message
    assert "batch_size" in message
    assert "valid integer" in message  # what was expected
    assert "'many'" in message  # what was given


def test_out_of_range_value_says_the_limit(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, line_with(batch_size=0))
    assert str(path) in message and "batch_size" in message
    assert "greater than 0" in message


def test_cron_with_four_fields_is_refused(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, line_with(schedule={"cron": "0 * * *"}))
    assert str(path) in message
    assert "schedule" in message
    assert "5 fields" in message and "'0 * * *'" in message


def test_five_field_cron_is_accepted(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path, {"press1": line_with(schedule={"cron": "*/5 6-22 * * 1-5"})})
    line = load_line(config, "press1")
    assert line.schedule.cron == "*/5 6-22 * * 1-5" and line.schedule.interval_seconds is None


@pytest.mark.parametrize(
    "schedule",
    [{"cron": "0 * * * *", "interval_seconds": 60}, {}],
    ids=["both", "neither"],
)
def test_schedule_needs_exactly_one_of_cron_and_interval(tmp_path: Path, schedule: dict) -> None:
    message, path = load_error(tmp_path, line_with(schedule=schedule))
    assert str(path) in message
    assert "schedule" in message
    assert "exactly one of 'cron' or 'interval_seconds'" in message


def test_duplicate_camera_ids_are_refused(tmp_path: Path) -> None:
    cameras = [{"camera_id": "top", "source": "/a"}, {"camera_id": "top", "source": "/b"}]
    message, path = load_error(tmp_path, line_with(cameras=cameras))
    assert str(path) in message
    assert "cameras" in message
    assert "unique" in message and "'top'" in message


def test_no_cameras_is_refused(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, line_with(cameras=[]))
    assert str(path) in message and "cameras" in message and "at least 1" in message


def test_line_id_must_match_the_file_name(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, line_with(line_id="press9"))
    assert str(path) in message
    assert "line_id" in message
    assert "'press9'" in message and "'press1'" in message


def test_missing_line_file_passed_directly(tmp_path: Path) -> None:
    path = tmp_path / "lines" / "ghost.yaml"
    with pytest.raises(ConfigError) as info:
        load_line_config(path)
    assert str(path) in str(info.value)
    assert "not found" in str(info.value)


def test_missing_qcflow_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_app_config(tmp_path)
    assert str(tmp_path / "qcflow.yaml") in str(info.value) and "not found" in str(info.value)


def test_yaml_syntax_error_names_file_and_position(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, "line_id: press1\ncameras: [unclosed\n")
    assert str(path) in message
    assert "not valid YAML" in message
    assert "line 2, column 10" in message  # PyYAML's mark says where the bad flow sequence starts


def test_top_level_list_is_refused(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, [GOOD_LINE])
    assert str(path) in message
    assert "mapping" in message and "list" in message


def test_empty_file_is_refused(tmp_path: Path) -> None:
    message, path = load_error(tmp_path, "")
    assert str(path) in message and "mapping" in message


@pytest.mark.parametrize("given", ["review_threshold", "fail_threshold"])
def test_only_one_threshold_override_is_refused(tmp_path: Path, given: str) -> None:
    anomaly = {"model": "m", given: 0.5}
    message, path = load_error(tmp_path, line_with(specialists={"anomaly": anomaly}))
    assert str(path) in message
    assert "specialists.anomaly" in message
    assert "both review_threshold and fail_threshold" in message


def test_review_threshold_above_fail_threshold_is_refused(tmp_path: Path) -> None:
    anomaly = {"model": "m", "review_threshold": 0.9, "fail_threshold": 0.5}
    message, path = load_error(tmp_path, line_with(specialists={"anomaly": anomaly}))
    assert str(path) in message and "must not exceed" in message


@pytest.mark.parametrize(
    ("anomaly", "reason"),
    [
        ({"coarse_relative": 0.5}, "coarse_relative=0.5"),
        ({"fine_score": True}, "fine_score=True"),
        ({"coarse_window": 0.6, "fine_score": True, "aspect": "pad"}, "stretch only"),
    ],
)
def test_a_coarse_maps_shape_without_a_coarse_window_is_refused(
    tmp_path: Path, anomaly: dict[str, object], reason: str
) -> None:
    message, path = load_error(tmp_path, line_with(specialists={"anomaly": {"model": "m", **anomaly}}))
    assert str(path) in message and "specialists.anomaly" in message
    assert reason in message and ("coarse_window > 0" in message or "pad" in message)


def test_every_error_in_a_file_is_reported_at_once(tmp_path: Path) -> None:
    message, _ = load_error(tmp_path, line_with(batch_size="many", colour="red"))
    assert "batch_size" in message and "colour" in message


def test_bad_qcflow_yaml_names_its_file_and_field(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path, {}, app={"dashboard": {"port": 70000}})
    with pytest.raises(ConfigError) as info:
        load_app_config(config)
    assert str(config / "qcflow.yaml") in str(info.value)
    assert "dashboard.port" in str(info.value) and "less than 65536" in str(info.value)


def test_load_all_lines_fails_on_one_bad_file_naming_it(tmp_path: Path) -> None:
    config = make_config_dir(
        tmp_path, {"press1": GOOD_LINE, "press2": line_with(line_id="press2", batch_size=-1)}
    )
    with pytest.raises(ConfigError) as info:
        load_all_lines(config)
    assert str(config / "lines" / "press2.yaml") in str(info.value)
    assert str(config / "lines" / "press1.yaml") not in str(info.value)


def test_non_utf8_line_file_gives_config_error_naming_the_file(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path, {})
    path = config / "lines" / "press1.yaml"
    # e.g. saved by a Windows editor in cp1252 / Latin-1
    path.write_bytes(yaml.safe_dump(line_with(name="Gießerei 1"), allow_unicode=True).encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_line(config, "press1")
    assert str(path) in str(info.value)


# --- looking lines and cameras up ----------------------------------------------------------


def test_unknown_line_id_lists_the_configured_lines(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path, {"press1": GOOD_LINE, "press2": line_with(line_id="press2")})
    with pytest.raises(ConfigError) as info:
        load_line(config, "press3")
    message = str(info.value)
    assert "'press3'" in message
    assert "['press1', 'press2']" in message


def test_unknown_camera_id_is_named_with_the_known_ones(tmp_path: Path) -> None:
    config = make_config_dir(tmp_path, {"press1": GOOD_LINE})
    line = load_line(config, "press1")
    with pytest.raises(ConfigError) as info:
        line.camera("bottom")
    message = str(info.value)
    assert "'bottom'" in message and "'press1'" in message
    assert "'top'" in message and "'side'" in message
    assert line.camera("top").source == "sim://press1?seed=3"
