"""Plain functions behind the inspect_line flow: source -> orchestrator -> decide -> db.

Frames are processed in small chunks, each committed in one transaction after
its images are on disk; the source watermark moves in the same transaction.
A crash therefore loses at most the chunks in flight, which are re-read (and
de-duplicated by the database) on the next run. While one chunk is inspected,
the next is read and decoded and the previous one stored and committed, each
stage in a thread of its own.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from pipeline.config import LineConfig, load_environment, load_line
from pipeline.db import repository as repo
from pipeline.db.engine import (
    check_connection,
    default_database_url,
    make_engine,
    make_session_factory,
    upgrade_to_head,
)
from pipeline.orchestrator import Orchestrator, build_orchestrator
from pipeline.sources import Pulled, open_source
from pipeline.storage import ImageStore
from pipeline.types import Frame, InspectionResult

log = logging.getLogger(__name__)

CHUNK = 16  # frames per ONNX batch and per database transaction

# Called with the inspections a chunk added, after its transaction committed (line events, metrics).
OnLogged = Callable[[Sequence[tuple[Frame, InspectionResult]]], None]


@dataclass(frozen=True, slots=True)
class Workspace:
    """Everything one installation keeps: data folder, database, image store, config."""

    data_dir: Path
    config_dir: Path
    database_url: str
    engine: Engine = field(repr=False)

    @property
    def store(self) -> ImageStore:
        return ImageStore(self.data_dir / "store")

    @property
    def models_root(self) -> Path:
        return self.data_dir / "models"

    def session(self) -> Session:
        return make_session_factory(self.engine)()

    def line(self, line_id: str) -> LineConfig:
        return load_line(self.config_dir, line_id)


def open_workspace(
    data_dir: Path | None = None, config_dir: Path | None = None, database_url: str | None = None
) -> Workspace:
    """Create the data folder, reach the database and upgrade it to the newest schema."""
    env = load_environment()
    data_dir = Path(data_dir or env.home).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or env.database_url or default_database_url(data_dir)
    engine = make_engine(url)
    check_connection(engine)
    upgrade_to_head(engine)
    return Workspace(data_dir, Path(config_dir or env.config_dir), url, engine)


@dataclass(slots=True)
class BatchSummary:
    line_id: str
    camera_id: str
    frames: int = 0
    new_inspections: int = 0
    frame_errors: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    scored_truth: list[tuple[float, str]] = field(default_factory=list)  # (score, truth) where known
    seconds: float = 0.0

    def merge(self, other: BatchSummary) -> None:
        self.frames += other.frames
        self.new_inspections += other.new_inspections
        self.frame_errors += other.frame_errors
        self.decisions.update(other.decisions)
        self.scored_truth.extend(other.scored_truth)
        self.seconds += other.seconds


@functools.lru_cache(maxsize=8)
def _cached_orchestrator(
    line_json: str, model_dirs: tuple[tuple[str, str], ...], threads: int
) -> Orchestrator:
    line = LineConfig.model_validate_json(line_json)
    return build_orchestrator(line, {name: Path(path) for name, path in model_dirs}, threads)


def orchestrator_for(ws: Workspace, line: LineConfig) -> Orchestrator:
    """The line's orchestrator with its models resolved in the registry (cached: sessions are costly),
    each model session on its share of the cores among the inspection lanes."""
    with ws.session() as session:
        dirs = tuple((n, repo.get_active_model(session, n).path) for n in line.model_names())
    return _cached_orchestrator(line.model_dump_json(), dirs, load_environment().lane_threads())


def inspect_camera(
    ws: Workspace,
    line: LineConfig,
    camera_id: str,
    *,
    max_frames: int | None = None,
    source_uri: str | None = None,
    flow_run_id: str | None = None,
    on_logged: OnLogged | None = None,
) -> BatchSummary:
    """Pull up to ``max_frames`` new frames from one camera, inspect and log them."""
    started = time.perf_counter()
    camera = line.camera(camera_id)
    uri = source_uri or camera.source
    orchestrator = orchestrator_for(ws, line)
    source = open_source(uri, line.line_id, camera_id)
    summary = BatchSummary(line.line_id, camera_id)
    with _camera_lock(ws, line.line_id, camera_id):
        with ws.session() as session, session.begin():
            repo.ensure_line(session, line.line_id, line.name)
            repo.ensure_camera(session, line.line_id, camera_id, uri, camera.mm_per_px)
            since = repo.get_watermark(session, line.line_id, camera_id, uri)
        pulled = source.read(since, max_frames or line.batch_size)
        lanes = load_environment().lanes()
        # the stages at once: the next chunk is read and decoded, ``lanes`` chunks inspected, the last
        # one stored and committed; one thread to read and one to log, so chunks are logged in order
        # and the watermark only moves past a chunk once it and every chunk before it are committed
        with (
            ThreadPoolExecutor(1, "qcflow-read") as reader,
            ThreadPoolExecutor(lanes, "qcflow-inspect") as inspecting,
            ThreadPoolExecutor(1, "qcflow-log") as writer,
        ):
            next_chunk = reader.submit(_take, pulled, CHUNK)
            in_models: deque[tuple[list[Pulled], Future[list[InspectionResult]]]] = deque()
            logging_chunk: Future[None] | None = None
            lost: Exception | None = None  # the source failed: what was read before it is still logged
            while True:
                chunk: list[Pulled] = []
                if lost is None:
                    try:
                        chunk = next_chunk.result()
                    except Exception as exc:
                        lost = exc
                if chunk:
                    next_chunk = reader.submit(_take, pulled, CHUNK)
                    in_models.append((chunk, inspecting.submit(_inspect, orchestrator, chunk)))
                    if len(in_models) < lanes:
                        continue
                if not in_models:
                    break
                done, inspected = in_models.popleft()
                results = inspected.result()
                if logging_chunk is not None:
                    logging_chunk.result()  # a failed commit stops the run before the next one
                logging_chunk = writer.submit(
                    _log_chunk, ws, orchestrator, line, camera_id, uri, done, results, summary,
                    flow_run_id, on_logged,
                )  # fmt: skip
            if logging_chunk is not None:
                logging_chunk.result()
            if lost is not None:
                raise lost
    summary.seconds = time.perf_counter() - started
    return summary


def _take(pulled: Iterator[Pulled], n: int) -> list[Pulled]:
    return list(itertools.islice(pulled, n))


def _inspect(orchestrator: Orchestrator, chunk: list[Pulled]) -> list[InspectionResult]:
    good = [p.frame for p in chunk if p.frame is not None]
    return orchestrator.inspect(good) if good else []


def _log_chunk(
    ws: Workspace,
    orchestrator: Orchestrator,
    line: LineConfig,
    camera_id: str,
    uri: str,
    chunk: list[Pulled],
    results: list[InspectionResult],
    summary: BatchSummary,
    flow_run_id: str | None,
    on_logged: OnLogged | None,
) -> None:
    good = [(p, p.frame) for p in chunk if p.frame is not None]
    store = ws.store
    for _, frame in good:
        store.put_frame(frame)  # images on disk before the rows that point at them
    heatmaps = [_store_heatmap(store, r, orchestrator) for r in results]
    logged: list[tuple[Frame, InspectionResult]] = []
    with ws.session() as session, session.begin():
        for pulled in chunk:
            if pulled.error is not None:
                repo.record_frame_error(session, line.line_id, camera_id, uri, pulled.position, pulled.error)
                summary.frame_errors += 1
        frame_ids = repo.record_frames(session, [(f, str(store.path_for(f.sha256))) for _, f in good])
        recorded = repo.record_inspections(
            session, list(zip(frame_ids, results, heatmaps, strict=True)), flow_run_id=flow_run_id
        )
        for (pulled, frame), result, new in zip(good, results, recorded, strict=True):
            if new:
                summary.new_inspections += 1
                logged.append((frame, result))
            summary.decisions[result.decision.value] += 1
            if pulled.truth is not None and result.anomaly_score is not None:
                summary.scored_truth.append((result.anomaly_score, pulled.truth))
        repo.set_watermark(session, line.line_id, camera_id, uri, chunk[-1].position)
    summary.frames += len(good)
    if on_logged is not None and logged:
        on_logged(logged)


@contextlib.contextmanager
def _camera_lock(ws: Workspace, line_id: str, camera_id: str) -> Iterator[None]:
    """Let one run at a time pull from a camera, across processes and machines, so two workers
    never read the same frames from one watermark (a PostgreSQL advisory lock, released by the
    server if the holder dies). SQLite is a one-machine database: there the UNIQUE constraints
    alone keep a frame from being logged twice."""
    if ws.engine.dialect.name != "postgresql":
        yield
        return
    digest = hashlib.sha256(f"{line_id}/{camera_id}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    with ws.engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


def _store_heatmap(store: ImageStore, result: InspectionResult, orchestrator: Orchestrator) -> str | None:
    heatmaps = [f.heatmap for f in result.findings if f.heatmap is not None]
    if not heatmaps or orchestrator.thresholds is None:
        return None
    return store.put_heatmap(heatmaps[0], scale=orchestrator.thresholds.fail * 1.25)
