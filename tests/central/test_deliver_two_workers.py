"""Two delivery workers on one queue, as ``vaora-central-deliver@1`` and ``@2`` run them: two real
``vaora-central deliver`` processes send 300 queued e-mails to a real SMTP catcher, each exactly once, and both
take part (the claim in ``central.outbound.queue`` gives each job to one worker). On SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from central.core.beats import DELIVER_PREFIX
from central.core.db import database, open_database
from central.core.models import WorkerBeat
from central.outbound.jobs import enqueue_message
from central.outbound.models import MailJob
from devtools.mailcatcher import MailCatcher
from tests.conftest import scaled, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(scaled(600))]

REPO = Path(__file__).resolve().parents[2]
MAILS = 300
NOW = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


def queue_mails(database_url: str) -> None:
    """Queue :data:`MAILS` ready e-mails, one per recipient."""
    open_database(database_url)
    with database.connection_context():
        for number in range(MAILS):
            message = EmailMessage()
            message["From"] = "vanphong@ubnd.example.vn"
            message["To"] = f"daibieu{number}@example.vn"
            message["Subject"] = f"Thư mời số {number}"
            message.set_content("Kính gửi đại biểu.")
            enqueue_message(message, NOW)
    database.close()


def job_states(database_url: str) -> tuple[Counter[str], Counter[str | None]]:
    """How many jobs are in each state, and how many each worker claimed."""
    open_database(database_url)
    with database.connection_context():
        jobs = list(MailJob.select(MailJob.status, MailJob.claimed_by))
    database.close()
    return Counter(str(job.status) for job in jobs), Counter(job.claimed_by for job in jobs)


def running_workers(database_url: str) -> int:
    """How many delivery processes have recorded their beat (each does after its first round)."""
    open_database(database_url)
    with database.connection_context():
        count = WorkerBeat.select().where(WorkerBeat.name.startswith(DELIVER_PREFIX)).count()
    database.close()
    return count


def test_two_deliver_processes_send_300_mails_none_twice(database_url: str, mail: MailCatcher,
                                                         tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("VAORA_")}
    env.update({"PYTHONPATH": str(REPO), "VAORA_DATABASE_URL": database_url, "VAORA_SMTP_HOST": mail.host,
                "VAORA_SMTP_PORT": str(mail.port), "VAORA_DATA_DIR": str(tmp_path / "data"),
                "VAORA_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem")})
    logs = [tmp_path / f"deliver-{n}.log" for n in (1, 2)]
    workers = [subprocess.Popen([sys.executable, "-m", "central.cli", "deliver", "--interval", "0.2"], env=env,
                                cwd=REPO, stdout=log.open("ab"), stderr=subprocess.STDOUT) for log in logs]
    try:
        # Both poll the queue before the mails arrive, so the load is theirs to split.
        wait_until(lambda: running_workers(database_url) == 2, timeout=120, interval=0.2,
                   message=lambda: "\n".join(log.read_text(errors="replace")[-1500:] for log in logs))
        queue_mails(database_url)
        # Every job recorded as sent: from then on no worker sends anything more.
        wait_until(lambda: job_states(database_url)[0] == Counter({"sent": MAILS}), timeout=300, interval=0.5,
                   message=lambda: f"jobs: {job_states(database_url)}\n"
                                   + "\n".join(log.read_text(errors="replace")[-1500:] for log in logs))
        assert all(worker.poll() is None for worker in workers)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=scaled(30))
    received = Counter(str(message["To"]) for message in mail.messages)
    assert received == Counter({f"daibieu{number}@example.vn": 1 for number in range(MAILS)}), (
        f"{len(mail.messages)} received; sent twice: {[to for to, n in received.items() if n > 1][:5]}")
    _, claimed_by = job_states(database_url)
    assert len(claimed_by) == 2 and None not in claimed_by, f"both workers took part: {claimed_by}"
