"""Shared fixtures: a database per test, on SQLite and (when configured) PostgreSQL.

The PostgreSQL variant needs ``QCFLOW_TEST_PG_URL`` pointing at a server where
the user may create databases, e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``. Each test gets a
fresh, randomly named database that is dropped afterwards, so tests never see
each other's rows and can run against a shared server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from pipeline.db.engine import make_engine, make_session_factory, scratch_postgres_database, upgrade_to_head

PG_ENV = "QCFLOW_TEST_PG_URL"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A throw-away database on the server in ``QCFLOW_TEST_PG_URL``; yields its URL."""
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        pytest.skip(f"{PG_ENV} is not set; set it to a PostgreSQL URL to run postgres tests")
    with scratch_postgres_database(admin_url, "qcflow_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty database (no tables), once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qcflow.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of an empty PostgreSQL database, for tests that only make sense there."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def db_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database already upgraded to the newest schema."""
    upgrade_to_head(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session on a fresh database; whatever the test did not commit is rolled back."""
    with make_session_factory(db_engine)() as session:
        yield session
        session.rollback()


# --- a small anomaly model fitted on simulated good parts, shared by the session ---

TEST_SIMULATION = "sim://test?seed=3&size=256"


@pytest.fixture(scope="session")
def anomaly_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (pretrained backbone, small bank) model exported to ONNX with its model.json."""
    from inspectors.training.fit_anomaly import fit_anomaly, request_from_simulation
    from inspectors.training.patchcore import PatchCoreSettings
    from pipeline.sources import SimulatedSource

    simulation = SimulatedSource(TEST_SIMULATION, "test", "cam1").line.settings
    request = request_from_simulation(
        simulation, "test-anomaly", n_fit=24, n_calibration=24, settings=PatchCoreSettings(bank_size=512)
    )
    model_dir, _ = fit_anomaly(request, tmp_path_factory.mktemp("models"))
    return model_dir


def write_line_config(
    config_dir: Path, source: str, *, line_id: str = "test", model: str = "test-anomaly"
) -> Path:
    """A config folder with qcflow.yaml and one line using ``source`` on camera cam1."""
    (config_dir / "lines").mkdir(parents=True, exist_ok=True)
    (config_dir / "qcflow.yaml").write_text("lines_dir: lines\n")
    (config_dir / "lines" / f"{line_id}.yaml").write_text(
        f"line_id: {line_id}\nname: Test line\nschedule: {{interval_seconds: 30}}\nbatch_size: 20\n"
        f"cameras:\n  - {{camera_id: cam1, source: '{source}', mm_per_px: 0.2}}\n"
        f"specialists:\n  anomaly: {{enabled: true, model: {model}}}\n"
    )
    return config_dir


@pytest.fixture
def workspace(tmp_path: Path, anomaly_model_dir: Path):  # type: ignore[no-untyped-def]
    """A data folder + SQLite database with the test model registered, and a simulated test line."""
    from pipeline.fitting import register_model_dir
    from pipeline.inspection import open_workspace

    config_dir = write_line_config(tmp_path / "config", TEST_SIMULATION)
    ws = open_workspace(tmp_path / "data", config_dir)
    register_model_dir(ws, anomaly_model_dir)
    yield ws
    ws.engine.dispose()


@pytest.fixture(scope="session")
def mvtec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MVTec-layout dataset of simulated parts (good, crack and pit, with masks)."""
    import cv2

    from pipeline.simulate import SimulationSettings, render_part

    root = tmp_path_factory.mktemp("mvtec")
    sim = SimulationSettings(size=256, seed=11)
    layout = [("train/good", None, range(0, 24)), ("test/good", None, range(100, 110))]
    layout += [(f"test/{k}", k, range(200 + 10 * i, 205 + 10 * i)) for i, k in enumerate(("crack", "pit"))]
    for folder, kind, indices in layout:
        (root / folder).mkdir(parents=True)
        for i in indices:
            part = render_part(sim, i, defect=kind)
            cv2.imwrite(str(root / folder / f"{i:03d}.png"), part.image)
            if kind:
                (root / "ground_truth" / kind).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(root / "ground_truth" / kind / f"{i:03d}_mask.png"), part.mask)
    return root
