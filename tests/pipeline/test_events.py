"""Line events: the on-disk outbox, and delivery through a real Mosquitto broker (QCFLOW_TEST_MQTT_URL)."""

from __future__ import annotations

import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from pipeline.db import repository as repo
from pipeline.events import EventOutbox, MqttEventPublisher, decision_topic, outbox_path
from pipeline.inspection import Workspace, inspect_camera
from pipeline.types import Decision, Frame, InspectionResult, sha256_hex

MQTT_ENV = "QCFLOW_TEST_MQTT_URL"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _inspected(decision: Decision) -> tuple[Frame, InspectionResult]:
    data = f"frame {decision} {time.time_ns()}".encode()
    frame = Frame(
        np.zeros((8, 8, 3), np.uint8), "line1", "cam1", datetime.now(UTC), sha256_hex(data), "x", data
    )
    result = InspectionResult(frame.sha256, (), decision, "test", {}, "hash", ())
    return frame, result


def test_events_are_queued_without_blocking_and_survive_a_restart(tmp_path: Path) -> None:
    unreachable = f"mqtt://127.0.0.1:{_free_port()}"
    publisher = MqttEventPublisher(unreachable, EventOutbox(outbox_path(tmp_path)), [Decision.FAIL])
    started = time.perf_counter()
    publisher([_inspected(Decision.FAIL), _inspected(Decision.PASS), _inspected(Decision.FAIL)])
    assert time.perf_counter() - started < 0.5
    assert publisher.pending() == 2  # PASS is not published
    publisher.close()
    reopened = EventOutbox(outbox_path(tmp_path))
    queued = reopened.claim(10, lease_s=60)
    assert [e.topic for e in queued] == [decision_topic("line1", "cam1")] * 2
    assert {json.loads(e.payload)["decision"] for e in queued} == {"FAIL"}
    reopened.close()


def test_processes_sharing_an_outbox_never_hold_the_same_event(tmp_path: Path) -> None:
    first, second = EventOutbox(outbox_path(tmp_path)), EventOutbox(outbox_path(tmp_path))
    first.put([("t", "a"), ("t", "b"), ("t", "c")])
    claimed = first.claim(2, lease_s=60)
    assert [e.payload for e in claimed] == ["a", "b"]
    assert [e.payload for e in second.claim(10, lease_s=60)] == ["c"]  # only what nobody holds
    first.release(claimed[1:])  # "b" was not sent: free for any sender
    assert [e.payload for e in second.claim(10, lease_s=60)] == ["b"]
    assert [e.payload for e in first.claim(10, lease_s=-1)] == []  # all held, none acknowledged yet
    assert len(first) == 3
    first.close()
    second.close()


# --- against a real broker ------------------------------------------------------------------


@pytest.fixture
def mqtt_url() -> str:
    url = os.environ.get(MQTT_ENV)
    if not url:
        pytest.skip(f"{MQTT_ENV} is not set; set it to e.g. mqtt://127.0.0.1:1883 to run MQTT tests")
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 1883), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MQTT broker at {url} ({exc})")
    return url


@pytest.fixture
def received(mqtt_url: str) -> Iterator[queue.Queue[dict[str, object]]]:
    """Payloads published on the test line's decision topic, as the PLC would see them."""
    parsed = urlparse(mqtt_url)
    messages: queue.Queue[dict[str, object]] = queue.Queue()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(decision_topic("test", "cam1"), qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, msg: messages.put(json.loads(msg.payload))
    client.connect(parsed.hostname or "", parsed.port or 1883)
    client.loop_start()
    assert subscribed.wait(10), "could not subscribe to the test broker"
    yield messages
    client.loop_stop()
    client.disconnect()


def _collect(
    messages: queue.Queue[dict[str, object]], frames: set[str], timeout_s: float
) -> list[dict[str, object]]:
    """Events about ``frames`` until each has arrived or time is up (others on the broker are ignored)."""
    got: list[dict[str, object]] = []
    deadline = time.monotonic() + timeout_s
    while {e["frame_sha256"] for e in got} != frames and time.monotonic() < deadline:
        try:
            event = messages.get(timeout=0.2)
        except queue.Empty:
            continue
        if event["frame_sha256"] in frames:
            got.append(event)
    return got


def _failed_frames(ws: Workspace) -> set[str]:
    with ws.session() as session:
        recent = repo.recent_inspections(session, "test", 100)
    return {r.frame_sha256 for r in recent if r.decision is Decision.FAIL}


def test_fail_events_of_a_run_reach_the_broker(workspace: Workspace, mqtt_url: str, received) -> None:  # type: ignore[no-untyped-def]
    publisher = MqttEventPublisher(mqtt_url, EventOutbox(outbox_path(workspace.data_dir)), [Decision.FAIL])
    try:
        inspect_camera(workspace, workspace.line("test"), "cam1", max_frames=20, on_logged=publisher)
        failed = _failed_frames(workspace)
        assert failed, "the simulated run should contain failing parts"
        events = _collect(received, failed, timeout_s=15)
    finally:
        publisher.close()
    assert {e["frame_sha256"] for e in events} == failed
    assert {(e["line"], e["camera"], e["decision"]) for e in events} == {("test", "cam1", "FAIL")}
    assert all(isinstance(e["score"], float) and e["model_versions"] for e in events)


class _Proxy:
    """A TCP relay to the broker that can be started late: the broker 'comes back'."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port, self.target = port, target
        self.server = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()

    def close(self) -> None:
        self.server.close()


def test_events_wait_for_a_broker_that_is_down_and_are_delivered_when_it_returns(
    workspace: Workspace,
    mqtt_url: str,
    received,  # type: ignore[no-untyped-def]
) -> None:
    broker = urlparse(mqtt_url)
    port = _free_port()  # nothing listens here yet: the broker path is down
    publisher = MqttEventPublisher(
        f"mqtt://127.0.0.1:{port}", EventOutbox(outbox_path(workspace.data_dir)), [Decision.FAIL]
    )
    proxy = None
    try:
        line = workspace.line("test")
        summary = inspect_camera(workspace, line, "cam1", max_frames=20, on_logged=publisher)
        assert summary.new_inspections == 20  # inspection went on without the broker
        failed = _failed_frames(workspace)
        assert failed and publisher.pending() == len(failed)
        assert received.empty()
        proxy = _Proxy(port, (broker.hostname or "", broker.port or 1883))
        events = _collect(received, failed, timeout_s=40)  # paho's reconnect backoff
    finally:
        publisher.close()
        if proxy is not None:
            proxy.close()
    assert {e["frame_sha256"] for e in events} == failed
