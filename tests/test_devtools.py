"""The real-process fixtures work: Mosquitto (with persistence across a crash), SMTP catcher, databases, and the
one timeout scale they all share."""

from __future__ import annotations

import os
import queue
import smtplib
import socket
import textwrap
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from playhouse.db_url import connect

from devtools.broker import BrokerError, LocalBroker
from devtools.mailcatcher import MailCatcher
from devtools.ports import free_port
from devtools.timeouts import TIMEOUT_SCALE_ENV, scaled

TIMEOUT = scaled(10.0)
"""For the waits this module does itself (paho, smtplib, sockets); devtools' own waits scale inside."""
MAIL_TIMEOUT = 10.0

REPO = Path(__file__).resolve().parents[1]


def _client(broker: LocalBroker, client_id: str, *, clean_session: bool = True) -> mqtt.Client:
    """A connected paho-mqtt 2.x client running its network loop; received messages go to ``.inbox``."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session)
    inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    connected: queue.Queue[object] = queue.Queue()
    client.on_message = lambda _c, _u, message: inbox.put(message)
    client.on_connect = lambda _c, _u, _flags, reason_code, _props: connected.put(reason_code)
    client.connect(broker.host, broker.port)
    client.loop_start()
    reason_code = connected.get(timeout=TIMEOUT)
    assert not reason_code.is_failure, reason_code
    client.inbox = inbox  # type: ignore[attr-defined]
    return client


def _close(client: mqtt.Client) -> None:
    client.disconnect()
    client.loop_stop()


def _subscribe(client: mqtt.Client, topic: str) -> None:
    granted: queue.Queue[object] = queue.Queue()
    client.on_subscribe = lambda _c, _u, _mid, codes, _props: granted.put(codes)
    client.subscribe(topic, qos=1)
    codes = granted.get(timeout=TIMEOUT)
    assert [int(code.value) for code in codes] == [1]  # type: ignore[attr-defined]


def _publish(broker: LocalBroker, topic: str, payload: bytes) -> None:
    publisher = _client(broker, "devtools-publisher")
    try:
        publisher.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)
    finally:
        _close(publisher)


def test_broker_fixture_accepts_a_paho_client_and_delivers(broker: LocalBroker) -> None:
    client = _client(broker, "devtools-roundtrip")
    try:
        _subscribe(client, "vaora/v1/test/roundtrip")
        client.publish("vaora/v1/test/roundtrip", "xin chào".encode(), qos=1).wait_for_publish(TIMEOUT)
        message = client.inbox.get(timeout=TIMEOUT)  # type: ignore[attr-defined]
    finally:
        _close(client)
    assert message.topic == "vaora/v1/test/roundtrip"
    assert message.payload.decode() == "xin chào"
    assert broker.running and broker.pid is not None


def test_queued_qos1_message_survives_broker_kill_and_restart(broker: LocalBroker) -> None:
    topic = "vaora/v1/gates/g1/acks"
    subscriber = _client(broker, "devtools-persistent-sub", clean_session=False)
    _subscribe(subscriber, topic)
    _close(subscriber)  # the session (and its subscription) stays on the broker

    _publish(broker, topic, b"queued-while-offline")
    broker.wait_persisted(b"queued-while-offline")  # PUBACK comes before the save; a kill can beat it
    port, old_pid = broker.port, broker.pid
    broker.kill()
    assert not broker.running
    with pytest.raises(OSError):
        socket.create_connection((broker.host, port), timeout=1).close()

    broker.restart()
    assert broker.port == port
    assert broker.pid not in (None, old_pid)

    subscriber = _client(broker, "devtools-persistent-sub", clean_session=False)
    try:
        message = subscriber.inbox.get(timeout=TIMEOUT)  # type: ignore[attr-defined]
    finally:
        _close(subscriber)
    assert (message.topic, message.payload, message.qos) == (topic, b"queued-while-offline", 1)


def test_two_brokers_get_distinct_ports_never_1883(
    broker: LocalBroker, broker_factory: Callable[..., LocalBroker]
) -> None:
    second = broker_factory()
    assert broker.port != second.port
    assert 1883 not in (broker.port, second.port)
    assert broker.pid != second.pid
    for each in (broker, second):
        socket.create_connection((each.host, each.port), timeout=TIMEOUT).close()


def test_broker_stop_ends_the_process_and_frees_the_port(tmp_path: Path) -> None:
    with LocalBroker(tmp_path / "b") as broker:
        pid, port = broker.pid, broker.port
        assert pid is not None
    assert not broker.running and broker.pid is None
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert "terminating" in broker.log_path.read_text()


def test_broker_with_bad_config_raises_with_the_log_tail(tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "bad", extra_config="no_such_option 1")
    with pytest.raises(BrokerError, match="no_such_option"):
        broker.start()
    assert not broker.running


def test_broker_without_anonymous_access_refuses_anonymous_clients(
    broker_factory: Callable[..., LocalBroker],
) -> None:
    locked = broker_factory(allow_anonymous=False)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="devtools-anon")
    refused: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda _c, _u, _flags, reason_code, _props: refused.put(reason_code)
    client.connect(locked.host, locked.port)
    client.loop_start()
    try:
        reason_code = refused.get(timeout=TIMEOUT)
    finally:
        client.loop_stop()
    assert reason_code.is_failure  # type: ignore[attr-defined]


def test_free_port_is_bindable_and_not_1883() -> None:
    port = free_port()
    assert port != 1883
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def _send(catcher: MailCatcher, sender: str, body: str, to_addrs: list[str] | None = None) -> None:
    """Send an invitation mail (to lan@sotc.example.vn, a Vietnamese subject) to ``catcher`` over SMTP."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "lan@sotc.example.vn"
    message["Subject"] = "Giấy mời họp"
    message.set_content(body)
    with smtplib.SMTP(catcher.host, catcher.port, timeout=TIMEOUT) as smtp:
        smtp.send_message(message, to_addrs=to_addrs)


def test_mail_catcher_keeps_a_vietnamese_subject_intact(mail: MailCatcher) -> None:
    _send(mail, "Văn phòng UBND <vanphong@ubnd.example.vn>", "Kính mời đồng chí tới dự họp.\nSố: 125/TM-UBND",
          to_addrs=["lan@sotc.example.vn", "bcc@example.vn"])

    [received] = mail.wait_for(1, timeout=MAIL_TIMEOUT)
    assert received["Subject"] == "Giấy mời họp"
    assert received["From"].addresses[0].display_name == "Văn phòng UBND"
    assert "Kính mời đồng chí tới dự họp." in received.get_content()
    assert received["X-RcptTo"] == "lan@sotc.example.vn, bcc@example.vn"
    assert mail.messages == [received]
    mail.clear()
    assert mail.messages == []


def test_mail_catcher_wait_for_times_out_naming_what_arrived(mail: MailCatcher) -> None:
    with pytest.raises(TimeoutError, match="got 0"):
        mail.wait_for(1, timeout=0.2)


def test_mail_catcher_echo_prints_a_masked_one_line_summary() -> None:
    lines: list[str] = []
    with MailCatcher(echo=lines.append) as catcher:
        _send(catcher, "vanphong@ubnd.example.vn", "x")
        catcher.wait_for(1, timeout=MAIL_TIMEOUT)
    assert lines == ["mail #1 to=l***@sotc.example.vn subject='Giấy mời họp' attachments=0"]
    assert not catcher.running


def test_database_url_gives_a_database_peewee_can_use(database_url: str) -> None:
    import peewee

    db = connect(database_url)
    expected = peewee.PostgresqlDatabase if database_url.startswith("postgresql") else peewee.SqliteDatabase
    assert isinstance(db, expected)

    class Probe(peewee.Model):
        name = peewee.TextField()

        class Meta:
            database = db

    with db:
        db.create_tables([Probe])
        Probe.create(name="Nguyễn Văn A")
        assert [row.name for row in Probe.select()] == ["Nguyễn Văn A"]
        assert "probe" in db.get_tables()


POSTGRES_POLICY_TEST = textwrap.dedent(
    """
    def test_uses_postgres(database_url):
        assert database_url.startswith("postgresql://")
    """
)


@pytest.mark.parametrize(("required", "outcome"), [("0", "skipped"), ("1", "errors")])
def test_unreachable_postgres_skips_unless_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, required: str, outcome: str
) -> None:
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nmarkers =\n    postgres: PostgreSQL\n")
    pytester.makepyfile(POSTGRES_POLICY_TEST)
    monkeypatch.setenv("VAORA_PG_PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("VAORA_REQUIRE_POSTGRES", required)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    result = pytester.runpytest_subprocess("-m", "postgres", "-p", "no:cacheprovider", "-rsf")
    result.assert_outcomes(**{outcome: 1})
    result.stdout.fnmatch_lines(["*PostgreSQL at 127.0.0.1:* unavailable*"])


def test_broker_moves_off_a_port_taken_meanwhile_but_not_off_a_given_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(BrokerError, match="Address already in use"):
            LocalBroker(tmp_path / "given", port=taken).start()

        offered = iter([taken, free_port()])
        monkeypatch.setattr("devtools.ports.free_port", lambda host="127.0.0.1": next(offered))
        with LocalBroker(tmp_path / "auto") as broker:
            assert broker.port != taken
            socket.create_connection((broker.host, broker.port), timeout=TIMEOUT).close()


@pytest.mark.parametrize(("value", "factor"), [(None, 1.0), ("", 1.0), ("3", 3.0), ("2.5", 2.5), ("abc", 1.0),
                                               ("0", 0.1), ("-4", 0.1)])
def test_one_setting_scales_every_wait(monkeypatch: pytest.MonkeyPatch, value: str | None, factor: float) -> None:
    if value is None:
        monkeypatch.delenv(TIMEOUT_SCALE_ENV, raising=False)
    else:
        monkeypatch.setenv(TIMEOUT_SCALE_ENV, value)
    assert scaled(10.0) == pytest.approx(10.0 * factor)


def test_mail_catcher_wait_for_stretches_with_the_scale(mail: MailCatcher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TIMEOUT_SCALE_ENV, "2")
    with pytest.raises(TimeoutError, match=r"within 0\.4s"):
        mail.wait_for(1, timeout=0.2)


def test_broker_wait_subscribed_sees_another_clients_subscription(broker: LocalBroker) -> None:
    mark = broker.log_position()
    client = _client(broker, "devtools-watched")
    try:
        client.subscribe([("vaora/v1/gates/+/checkins", 1), ("vaora/v1/changes", 0)])
        broker.wait_subscribed("devtools-watched", "vaora/v1/gates/+/checkins", since=mark)
        broker.wait_subscribed("devtools-watched", "vaora/v1/changes", since=mark)
        with pytest.raises(TimeoutError, match="not subscribed"):
            broker.wait_subscribed("devtools-watched", "vaora/v1/other", since=mark, timeout=0.2)
    finally:
        _close(client)


def test_mail_catcher_moves_off_a_port_taken_meanwhile(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = iter([taken, free_port()])
        monkeypatch.setattr("devtools.ports.free_port", lambda host="127.0.0.1": next(offered))
        with MailCatcher() as catcher:
            assert catcher.port != taken
            _send(catcher, "vanphong@ubnd.example.vn", "x")
            assert len(catcher.wait_for(1, timeout=MAIL_TIMEOUT)) == 1
