"""Switching a line's specialists on or off: the line's YAML file is the truth, so it is edited there.

The new file is validated with the same model the pipeline loads it with before
it replaces the old one (atomically), so a toggle can never leave a line
unloadable; the flow picks the change up on its next run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from pydantic import ValidationError

from pipeline.config import LineConfig, format_errors, lines_dir, load_line
from pipeline.errors import ConfigError


def set_specialist_enabled(config_dir: Path, line_id: str, specialist: str, enabled: bool) -> None:
    """Set ``specialists.<specialist>.enabled`` in the line's file (validated before it is replaced)."""
    line = load_line(config_dir, line_id)  # refuses unknown lines, naming the known ones
    if specialist not in type(line.specialists).model_fields:
        raise ConfigError(
            f"line {line_id!r} has no specialist {specialist!r}; "
            f"specialists: {sorted(type(line.specialists).model_fields)}"
        )
    path = lines_dir(config_dir) / f"{line_id}.yaml"
    data = yaml.safe_load(path.read_text())
    # A specialist left out of the file is off; switching it on adds it with its defaults.
    section = data["specialists"].get(specialist) or {}
    data["specialists"][specialist] = {**section, "enabled": enabled}
    try:
        LineConfig.model_validate(data)
    except ValidationError as exc:  # e.g. a specialist that needs a model the file does not name yet
        raise ValueError(
            f"{specialist} cannot be switched {'on' if enabled else 'off'} from here; set it up in the "
            f"line's file first. {format_errors(path, exc)}"
        ) from exc
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    os.replace(tmp, path)
