"""Line events: FAIL (and optionally REVIEW) decisions published over MQTT for a PLC / MES.

Inspection never waits for the broker. An event is first written to an outbox
(a small SQLite file in the data folder), then a background thread sends it
with QoS 1 and deletes it once the broker acknowledged it. A broker that is
down, or a process that restarts, therefore delays events but never loses them;
delivery is at least once, so every payload carries an ``event_id`` for the
receiver to drop duplicates.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

from pipeline.config import EventSettings, load_app_config
from pipeline.errors import ConfigError
from pipeline.inspection import OnLogged
from pipeline.types import Decision, Frame, InspectionResult

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 5.0  # how long one publish may wait for the broker's PUBACK before it is retried
RETRY_MAX_S = 30.0  # ceiling of the exponential backoff while the broker is unreachable
CLAIM_BATCH = 20  # events a sender takes from the outbox at a time
POLL_S = 5.0  # look for events other processes of this data folder left in the outbox


def decision_topic(line_id: str, camera_id: str) -> str:
    return f"qcflow/{line_id}/{camera_id}/decision"


def event_payload(frame: Frame, result: InspectionResult) -> dict[str, object]:
    score = result.anomaly_score
    return {
        "event_id": uuid.uuid4().hex,
        "line": frame.line_id,
        "camera": frame.camera_id,
        "frame_sha256": frame.sha256,
        "decision": result.decision.value,
        "score": None if score is None else float(score),
        "reason": result.reason,
        "captured_at": frame.captured_at.isoformat(),
        "inspected_at": datetime.now(UTC).isoformat(),
        "model_versions": {f.specialist: f.model_version for f in result.findings},
        "config_hash": result.config_hash,
    }


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    id: int
    topic: str
    payload: str


class EventOutbox:
    """Events not yet acknowledged by the broker, on disk (shared by the processes of one data folder)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " topic TEXT NOT NULL, payload TEXT NOT NULL, leased_until REAL NOT NULL DEFAULT 0)"
            )

    def put(self, items: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self._db.executemany("INSERT INTO outbox (topic, payload) VALUES (?, ?)", items)

    def claim(self, limit: int, lease_s: float) -> list[QueuedEvent]:
        """The oldest events no sender holds, leased to the caller for ``lease_s`` seconds, so that
        the processes sharing the outbox do not all send the same backlog when the broker returns;
        a sender that dies frees its events when the lease runs out."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "UPDATE outbox SET leased_until = ? WHERE id IN (SELECT id FROM outbox"
                " WHERE leased_until < ? ORDER BY id LIMIT ?) RETURNING id, topic, payload",
                (now + lease_s, now, limit),
            ).fetchall()
        return sorted((QueuedEvent(*row) for row in rows), key=lambda e: e.id)

    def release(self, events: Sequence[QueuedEvent]) -> None:
        """Give claimed events back unsent, for whichever sender reaches the broker next."""
        with self._lock:
            self._db.executemany("UPDATE outbox SET leased_until = 0 WHERE id = ?", [(e.id,) for e in events])

    def remove(self, event_id: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (event_id,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _broker_address(mqtt_url: str) -> tuple[str, int]:
    parsed = urlparse(mqtt_url)
    if parsed.scheme != "mqtt" or not parsed.hostname:
        raise ConfigError(f"events.mqtt_url {mqtt_url!r}: expected mqtt://host[:port]")
    return parsed.hostname, parsed.port or 1883


class MqttEventPublisher:
    """Queues decision events in an outbox and sends them from a background thread."""

    def __init__(self, mqtt_url: str, outbox: EventOutbox, publish: Sequence[Decision]) -> None:
        import paho.mqtt.client as mqtt  # only processes that publish need paho

        self.host, self.port = _broker_address(mqtt_url)
        self.outbox = outbox
        self.publish_decisions = frozenset(publish)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"qcflow-{uuid.uuid4().hex[:8]}"
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=int(RETRY_MAX_S))
        self._client.on_connect = lambda *_: self._wake.set()
        self._client.connect_async(self.host, self.port, keepalive=30)
        self._client.loop_start()  # paho's own thread keeps reconnecting while the broker is down
        self._sender = threading.Thread(target=self._drain_forever, name="qcflow-events", daemon=True)
        self._sender.start()

    def __call__(self, logged: Sequence[tuple[Frame, InspectionResult]]) -> None:
        """Queue the events of newly logged inspections; never raises (inspections are already safe)."""
        items = [
            (decision_topic(frame.line_id, frame.camera_id), json.dumps(event_payload(frame, result)))
            for frame, result in logged
            if result.decision in self.publish_decisions
        ]
        if not items:
            return
        try:
            self.outbox.put(items)
        except sqlite3.Error:
            log.exception("could not queue %d line events in %s", len(items), self.outbox.path)
        self._wake.set()

    def _send_queued(self) -> bool:
        """Send what is queued, oldest first; False when the broker did not take it all."""
        while claimed := self.outbox.claim(CLAIM_BATCH, lease_s=CLAIM_BATCH * ACK_TIMEOUT_S):
            for index, event in enumerate(claimed):
                if not self._publish(event):
                    self.outbox.release(claimed[index:])
                    return False
                self.outbox.remove(event.id)
        return True

    def _publish(self, event: QueuedEvent) -> bool:
        """True once the broker acknowledged ``event`` (QoS 1 PUBACK)."""
        if self._stop.is_set() or not self._client.is_connected():
            return False
        info = self._client.publish(event.topic, event.payload, qos=1)
        info.wait_for_publish(timeout=ACK_TIMEOUT_S)
        return info.is_published()

    def _drain_forever(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            self._wake.clear()  # before sending, so a wake-up during the send is not lost
            try:
                sent_all = self._send_queued()
            except (sqlite3.Error, RuntimeError, ValueError):
                log.exception("sending line events to %s:%d failed", self.host, self.port)
                sent_all = False
            if sent_all:
                delay = 1.0
                self._wake.wait(POLL_S)
            else:
                log.debug(
                    "line events waiting for broker %s:%d (retry in %.0fs)", self.host, self.port, delay
                )
                self._wake.wait(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def pending(self) -> int:
        return len(self.outbox)

    def flush(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the outbox to empty; True if it did."""
        deadline = time.monotonic() + timeout_s
        while self.pending():
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.05)
        return True

    def close(self, flush_s: float = 0.0) -> None:
        """Stop sending (after up to ``flush_s`` seconds of it); what is still queued stays in
        the outbox for the next process."""
        if flush_s:
            self.flush(flush_s)
        self._stop.set()
        self._wake.set()
        self._sender.join(timeout=ACK_TIMEOUT_S + 1)
        self._client.loop_stop()
        self._client.disconnect()
        self.outbox.close()


def outbox_path(data_dir: Path) -> Path:
    return data_dir / "events" / "outbox.sqlite"


def publisher_from_settings(settings: EventSettings, data_dir: Path) -> MqttEventPublisher | None:
    if settings.mqtt_url is None:
        return None
    return MqttEventPublisher(settings.mqtt_url, EventOutbox(outbox_path(data_dir)), settings.publish)


@functools.lru_cache(maxsize=4)
def event_sink_for(data_dir: Path, config_dir: Path) -> OnLogged | None:
    """The installation's event publisher (one per process), or None when events are off.

    A short flush at exit sends a finished run's last events at once; whatever the broker
    does not take by then is sent by the next process (``qcflow serve`` drains the outbox).
    """
    publisher = publisher_from_settings(load_app_config(config_dir).events, data_dir)
    if publisher is not None:
        atexit.register(publisher.close, flush_s=2.0)
    return publisher
