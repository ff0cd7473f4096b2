"""The mail outbox on a real database (SQLite and PostgreSQL) and a real SMTP server: delivery, retry after
the SMTP server was down, no double send with concurrent workers, connection reuse, cancellation."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from central.core.db import database, open_database
from central.invitations.models import Invitation, Organisation
from central.meetings.models import Meeting
from central.migrations import migrate
from central.outbound.engine import OutboundWorker, Senders
from central.outbound.jobs import (
    QueuedMailSender,
    batch_progress,
    enqueue_delegate_code,
    enqueue_message,
    new_batch,
)
from central.outbound.models import MailJob
from central.outbound.queue import claim_due
from central.outbound.worker import MAIL_RETRY, PooledSmtpSender
from central.registration.delegates import register_delegate, send_code_email
from central.registration.models import Delegate
from devtools.mailcatcher import MailCatcher

START = datetime(2025, 3, 10, 1, 0, tzinfo=UTC)
NOW = START - timedelta(days=2)
MAIL_FROM = "vanphong@ubnd.example.vn"


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class CountingSender(PooledSmtpSender):
    """A pooled SMTP sender that counts the connections it opens."""

    connections = 0

    def _connect(self):  # type: ignore[no-untyped-def]
        self.connections += 1
        return super()._connect()


@pytest.fixture
def db(database_url: str) -> Iterator[None]:
    open_database(database_url)
    migrate()
    database.connect(reuse_if_open=True)
    yield
    if not database.is_closed():
        database.close()


@pytest.fixture
def invitation(db: None) -> Invitation:
    meeting = Meeting.create(
        title="Họp giao ban tháng 3",
        starts_at=START,
        ends_at=START + timedelta(hours=3),
        venue="Phòng họp số 1",
        site_id="hq",
        created_at=NOW,
    )
    organisation = Organisation.create(name="Sở Tài chính")
    return Invitation.create(
        meeting=meeting,
        organisation=organisation,
        number="1/TM-UBND",
        year=2025,
        seq=1,
        secret_hash="x" * 64,
        created_at=NOW,
    )


def add(invitation: Invitation, n: int) -> Delegate:
    return register_delegate(
        invitation,
        {"name": f"Đại biểu số {n}", "email": f"daibieu{n}@example.vn"},
        NOW,
        signing_key=lambda: pytest.fail("compact meetings need no key"),  # type: ignore[arg-type,return-value]
        mail_sender=None,  # type: ignore[arg-type]
        mail_from=MAIL_FROM,
        send_mail=False,
    )


def worker(mail: MailCatcher, clock: Clock, **kwargs: object) -> OutboundWorker:
    senders = Senders(mail=CountingSender(mail.host, mail.port, timeout=5), mail_from=MAIL_FROM)
    return OutboundWorker(senders=senders, clock=clock, **kwargs)  # type: ignore[arg-type]


def recipients(messages: list[EmailMessage]) -> Counter[str]:
    return Counter(str(message["To"]) for message in messages)


def test_queued_codes_are_delivered_over_one_connection_and_recorded(invitation, mail: MailCatcher) -> None:
    delegates = [add(invitation, n) for n in range(3)]
    batch = new_batch()
    for delegate in delegates:
        enqueue_delegate_code(delegate, NOW, group_key="invitation:1", batch=batch)
    assert Delegate.get_by_id(delegates[0].id).mail_status == "queued"
    assert batch_progress("invitation:1").to_dict() == {
        "batch": batch,
        "total": 3,
        "sent": 0,
        "failed": 0,
        "pending": 3,
        "done": False,
    }

    clock = Clock(NOW)
    w = worker(mail, clock)
    assert w.run_once() == 3
    messages = mail.wait_for(3)
    assert recipients(messages) == Counter({f"daibieu{n}@example.vn": 1 for n in range(3)})
    assert w.senders.mail.connections == 1, "one SMTP connection for the whole batch"
    assert {d.mail_status for d in Delegate.select()} == {"sent"}
    assert batch_progress("invitation:1").to_dict()["sent"] == 3
    assert batch_progress("invitation:1").done
    attachments = [part.get_content_type() for part in messages[0].iter_attachments()]
    assert attachments == ["application/pdf", "text/calendar"]
    assert w.run_once() == 0, "nothing is sent twice"


def test_a_mail_is_retried_with_backoff_after_the_smtp_server_was_down(invitation, mail: MailCatcher) -> None:
    delegate = add(invitation, 1)
    mail.stop()
    enqueue_delegate_code(delegate, NOW)
    clock = Clock(NOW)
    w = worker(mail, clock)

    assert w.run_once() == 1
    job = MailJob.get()
    assert (job.status, job.attempts) == ("queued", 1)
    assert job.next_attempt_at == NOW + MAIL_RETRY.delay(1) == NOW + timedelta(seconds=5)
    assert job.last_error and "Connection refused" in job.last_error
    row = Delegate.get_by_id(delegate.id)
    assert row.mail_status == "queued" and row.mail_error, "still queued, the error shown"

    clock.now = NOW + timedelta(seconds=4)
    assert w.run_once() == 0, "not due before its backoff"
    mail.start()
    clock.now = NOW + timedelta(seconds=5)
    assert w.run_once() == 1
    (message,) = mail.wait_for(1)
    assert message["To"] == "daibieu1@example.vn"
    job = MailJob.get()
    assert (job.status, job.attempts, job.last_error) == ("sent", 2, None)
    assert Delegate.get_by_id(delegate.id).mail_status == "sent"


def test_a_backlog_against_a_dead_server_shows_the_worker_alive_after_every_job(
    invitation, mail: MailCatcher
) -> None:
    """systemd's watchdog is fed from ``on_cycle``: a backlog of failing sends (10 s timeouts each in real life)
    must ping after every job, not once the whole backlog has been tried."""
    mail.stop()
    for n in range(45):  # more than two claim batches of 20
        enqueue_delegate_code(add(invitation, n), NOW)
    tried_when_pinged: list[int] = []

    def on_cycle() -> None:
        tried_when_pinged.append(MailJob.select().where(MailJob.last_error.is_null(False)).count())

    w = worker(mail, Clock(NOW), on_cycle=on_cycle)
    assert w.run_once() == 45
    assert tried_when_pinged == list(range(1, 46)), "one ping per job tried"


def test_a_mail_fails_for_good_after_its_last_attempt(invitation, mail: MailCatcher) -> None:
    delegate = add(invitation, 1)
    mail.stop()
    enqueue_delegate_code(delegate, NOW)
    MailJob.update(max_attempts=3).execute()
    clock = Clock(NOW)
    w = worker(mail, clock)
    for _ in range(3):
        assert w.run_once() == 1
        clock.now += timedelta(hours=2)
    job = MailJob.get()
    assert (job.status, job.attempts) == ("failed", 3)
    assert Delegate.get_by_id(delegate.id).mail_status == "failed"
    assert w.run_once() == 0
    assert [MAIL_RETRY.delay(n).total_seconds() for n in (1, 2, 3, 4, 20)] == [5, 10, 20, 40, 3600]


def test_two_workers_never_send_the_same_job_twice(invitation, mail: MailCatcher) -> None:
    delegates = [add(invitation, n) for n in range(30)]
    for delegate in delegates:
        enqueue_delegate_code(delegate, NOW)
    database.close()  # each worker thread uses its own connection
    clock = Clock(NOW)
    workers = [worker(mail, clock, batch_size=3, worker_id=f"w{i}", poll_interval=0.05) for i in range(2)]
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,)) for w in workers]
    for thread in threads:
        thread.start()
    try:
        messages = mail.wait_for(30, timeout=60)
        time.sleep(0.5)  # a double send would show up now
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert len(mail.messages) == 30
    assert recipients(mail.messages) == Counter({f"daibieu{n}@example.vn": 1 for n in range(30)})
    assert sum(w.sent_count for w in workers) == 30
    database.connect(reuse_if_open=True)
    assert Counter(job.status for job in MailJob.select()) == Counter({"sent": 30})
    assert {job.claimed_by for job in MailJob.select()} <= {"w0", "w1"}
    assert len(messages) == 30


def test_a_claim_is_exclusive(invitation) -> None:
    enqueue_delegate_code(add(invitation, 1), NOW)
    first = claim_due(NOW, "a")
    assert [job.status for job in first] == ["sending"]
    assert claim_due(NOW, "b") == [], "a claimed job is not claimable again"


def test_a_replaced_delegates_queued_mail_is_not_sent(invitation, mail: MailCatcher) -> None:
    delegate = add(invitation, 1)
    enqueue_delegate_code(delegate, NOW)
    Delegate.update(revoked_at=NOW).where(Delegate.id == delegate.id).execute()
    assert worker(mail, Clock(NOW)).run_once() == 1
    assert MailJob.get().status == "cancelled"
    time.sleep(0.3)
    assert mail.messages == []


def test_codes_are_queued_and_ready_messages_can_be_queued_too(invitation, mail: MailCatcher) -> None:
    delegate = add(invitation, 1)
    queued = QueuedMailSender(inner=PooledSmtpSender(mail.host, mail.port), clock=Clock(NOW))
    assert send_code_email(delegate, mail_sender=queued, mail_from=MAIL_FROM, now=NOW) is False
    assert Delegate.get_by_id(delegate.id).mail_status == "queued"
    note = EmailMessage()
    note["From"], note["To"], note["Subject"] = MAIL_FROM, "vanthu@example.vn", "Thư mời họp số 1/TM-UBND"
    note.set_content("Kính gửi đơn vị")
    enqueue_message(note, NOW)
    assert MailJob.select().count() == 2 and mail.messages == []
    assert worker(mail, Clock(NOW)).run_once() == 2
    messages = mail.wait_for(2)
    assert recipients(messages) == Counter({"daibieu1@example.vn": 1, "vanthu@example.vn": 1})
    forwarded = next(m for m in messages if m["To"] == "vanthu@example.vn")
    assert forwarded["Subject"] == "Thư mời họp số 1/TM-UBND"
    assert Delegate.get_by_id(delegate.id).mail_status == "sent"

    direct = EmailMessage()
    direct["From"], direct["To"], direct["Subject"] = MAIL_FROM, "ngay@example.vn", "Gửi ngay"
    direct.set_content("x")
    queued.send(direct)  # callers with their own outbox (invitation deliveries) still send at once
    assert mail.wait_for(3)[-1]["To"] == "ngay@example.vn"
    assert MailJob.select().count() == 2
