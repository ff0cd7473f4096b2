"""The embedded demo behind ``make demo``: central on SQLite, a private Mosquitto, a mail catcher, one gate.

Central's web server is ``vaora-central serve`` (gunicorn, one worker, with the mail queue's worker thread
on), in a child process; Mosquitto is another. The ingest worker and change feed run in threads here, beside
a gate on simulated pins (gpiozero MockFactory) that reads codes typed or pasted on this terminal.
The demo seeds one account per role (administrator, clerk, leader, guard, organiser; random passwords that
pass the password policy, printed), two halls and a remote point, three organisations and two
meetings (one per code scheme) through the real JSON API, registers one delegate in each, takes their codes out
of the e-mails the mail catcher received, and prints the web address, the accounts, where mail, SMS and logs
go, and the steps to try. The caught mail is kept as a Maildir (``<data dir>/mail``) and served as web pages
(:mod:`devtools.mailview`). Ctrl-C stops it all.

    python -m devtools.demo [--http-port N] [--mqtt-port N] [--smtp-port N] [--mail-port N] [--data-dir var/demo]
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import requests
import zxingcpp
from PIL import Image

from central.core.db import database, open_database
from central.messaging.changefeed import ChangeFeed
from central.messaging.ingest import IngestWorker
from central.migrations import migrate
from devtools import approval
from devtools.broker import LocalBroker
from devtools.mailcatcher import MailCatcher
from devtools.mailview import MailView
from devtools.ports import free_port, wait_for_http
from protocols.codes import format_compact, generate_compact
from protocols.reasons import describe

log = logging.getLogger(__name__)

LEADER = "lanhdao"
"""The demo's leader (approver) account: it approves the seeded invitations (its password is random per run)."""
ORGANISER = "tochuc"
"""The organiser who watches live attendance: the account the printed steps log in with."""


@dataclass(frozen=True)
class Account:
    """One seeded staff account and what its holder does in the demo."""

    username: str
    role: str
    full_name: str
    does: str


ACCOUNTS = (
    Account("quantri", "administrator", "Quản trị hệ thống (demo)",
            "người dùng, hội trường, đơn vị, nhật ký (/admin/users)"),
    Account("chuyenvien", "organiser", "Nguyễn Văn Minh, Chuyên viên Văn phòng",
            "soạn cuộc họp và thư mời (/meetings/)"),
    Account(LEADER, "approver", "Phạm Quốc Hùng, Phó Chủ tịch UBND", "duyệt thư mời (/invitations/)"),
    Account("baove", "guard", "Lê Văn Bình, Bảo vệ", "bàn tiếp đón khách vãng lai (/ban-tiep-don/)"),
    Account(ORGANISER, "organiser", "Trần Thị Lan, Ban tổ chức", "theo dõi điểm danh trực tiếp"),
)
HALLS = {
    "main": {"name": "Hội trường tầng 2", "kind": "main", "site_id": "hq", "address": "Trụ sở UBND, số 1 Trần Phú"},
    "room": {"name": "Phòng họp số 1", "kind": "main", "site_id": "hq", "address": "Trụ sở UBND, số 1 Trần Phú"},
    "remote": {"name": "Điểm cầu huyện Sơn Tịnh", "kind": "remote", "address": "UBND huyện Sơn Tịnh"},
}
"""The halls by role: the compact-code meeting is in the main hall with the remote point, the signed-code one at
the same time in the meeting room (a hall is never booked twice at once)."""
ORGANISATIONS = (
    {"name": "Sở Tư pháp", "leader_name": "Ông Võ Văn Tâm", "leader_phone": "0912345678",
     "office_email": "vanthu@stp.demo.vn"},
    {"name": "Sở Tài chính", "leader_name": "Bà Đặng Thị Thu", "leader_phone": "0987654321",
     "office_email": "vanthu@stc.demo.vn"},
    {"name": "UBND huyện Sơn Tịnh", "leader_name": "Ông Huỳnh Văn Phú", "leader_phone": "0905123456",
     "office_email": "vanphong@sontinh.demo.vn"},
)


def demo_password(username: str) -> str:
    """A random password that the project's policy accepts (12+ characters, not common, not the username)."""
    from central.auth.passwords import password_problem

    while True:
        candidate = secrets.token_urlsafe(12)
        if password_problem(candidate, username) is None:
            return candidate

GATE_TOML = """\
# Written by the demo: one gate on simulated pins reading codes typed on the terminal.
[gate]
id = "demo-gate-1"
site = "hq"
name = "Cổng chính (demo)"
direction = "in"
simulate = true
fail_mode = "secure"
data_dir = "{data_dir}"

[central]
url = "{central_url}"
token_file = "{token_file}"
timeout = 5

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
resend_seconds = 5

[scanner]
type = "stdin"

[pins]
relay = 17
green_led = 27
red_led = 22

[turnstile]
unlock_seconds = 3

[status]
enabled = true
listen = "127.0.0.1"
port = {status_port}
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--http-port", type=int, default=0, help="central's HTTP port (default: a free one)")
    parser.add_argument("--mqtt-port", type=int, default=0, help="Mosquitto's port (default: a free one)")
    parser.add_argument("--smtp-port", type=int, default=0, help="the mail catcher's port (default: a free one)")
    parser.add_argument("--mail-port", type=int, default=0, help="the demo mailbox's web page (default: a free one)")
    parser.add_argument("--status-port", type=int, default=0, help="the gate's guard page (default: a free one)")
    parser.add_argument("--data-dir", type=Path, default=Path("var/demo"), help="wiped and re-created at start")
    parser.add_argument("--seconds", type=float, default=0, help="stop by itself after this long (0: run until Ctrl-C)")
    return parser


def _say(line: str = "") -> None:
    print(line, flush=True)


def qr_text(message: EmailMessage) -> str:
    """Decode the QR image of a code e-mail, the way a scanner reads it off the delegate's phone."""
    for part in message.walk():
        if part.get_content_type() == "image/png":
            results = zxingcpp.read_barcodes(Image.open(io.BytesIO(part.get_payload(decode=True))))
            if results:
                return results[0].text
    raise RuntimeError("the code e-mail carries no readable QR image")


class Demo:
    """Starts, seeds, watches and stops the demo's parts in order."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.data_dir: Path = args.data_dir.resolve()
        self.api_token = secrets.token_urlsafe(24)
        self.passwords = {account.username: demo_password(account.username) for account in ACCOUNTS}
        self.leader_password = self.passwords[LEADER]
        self.halls: dict[str, int] = {}
        self.mailview: MailView | None = None
        self.stopping = threading.Event()
        self.broker: LocalBroker | None = None
        self.mail: MailCatcher | None = None
        self.server: subprocess.Popen[bytes] | None = None
        self.ingest: IngestWorker | None = None
        self.feed: ChangeFeed | None = None
        self.gate: Any = None
        self.url = ""
        self.status_port = 0

    # ----- start-up

    def start(self) -> None:
        """Start broker, mail catcher, central (web + ingest), seed the data, then start the gate."""
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(parents=True)
        self.broker = LocalBroker(self.data_dir / "mosquitto", port=self.args.mqtt_port or None)
        self.broker.start()
        self.mail = MailCatcher(port=self.args.smtp_port or None, echo=True, maildir=self.data_dir / "mail")
        self.mail.start()
        self.mailview = MailView(self.data_dir / "mail", port=self.args.mail_port).start()
        http_port = self.args.http_port or free_port()
        self.status_port = self.args.status_port or free_port()
        self.url = f"http://127.0.0.1:{http_port}"
        database_url = f"sqlite:///{self.data_dir / 'central.db'}"
        open_database(database_url)
        migrate()  # as `vaora-central init-db` would
        self.create_accounts_and_halls()
        database.close()
        self.start_server(database_url, http_port)
        self.ingest = IngestWorker(self.broker.host, self.broker.port)
        self.ingest.start()
        self.ingest.connected.wait(10)
        self.feed = ChangeFeed(self.broker.host, self.broker.port)
        self.feed.start()
        self.codes = self.seed()
        self.start_gate()

    def create_accounts_and_halls(self) -> None:
        """Create one account per role (as ``vaora-central create-admin`` and the admin's user page would) and
        the halls (as the admin's venue page would), in the open database."""
        from central.auth import users
        from central.meetings import venues

        now = datetime.now(UTC)
        for account in ACCOUNTS:
            users.create_user({"username": account.username, "password": self.passwords[account.username],
                               "role": account.role, "full_name": account.full_name}, actor="demo", now=now)
        for key, hall in HALLS.items():
            self.halls[key] = venues.create_venue(hall, actor="demo", now=now).id

    def start_server(self, database_url: str, http_port: int) -> None:
        """Run ``vaora-central serve`` on ``http_port`` (its log beside the demo's) and wait until it answers."""
        assert self.mail is not None and self.broker is not None
        settings = {
            "VAORA_DATABASE_URL": database_url,
            "VAORA_SMTP_HOST": self.mail.host,
            "VAORA_SMTP_PORT": str(self.mail.port),
            "VAORA_MAIL_FROM": "vanphong@ubnd.demo.vn",
            "VAORA_MQTT_HOST": self.broker.host,
            "VAORA_MQTT_PORT": str(self.broker.port),
            "VAORA_API_TOKEN": self.api_token,
            "VAORA_SIGNING_KEY_FILE": str(self.data_dir / "signing-key.pem"),
            "VAORA_PUBLIC_URL": self.url,
            "VAORA_WEB_WORKERS": "1",
            "VAORA_WEB_THREADS": "16",
            "VAORA_MAIL_WORKER": "1",  # no separate `deliver` process in the demo
        }
        log_file = (self.data_dir / "central.log").open("ab")
        self.server = subprocess.Popen(
            [sys.executable, "-m", "central.cli", "serve", "--host", "127.0.0.1", "--port", str(http_port)],
            env={**os.environ, **settings}, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        )
        log_file.close()
        try:
            wait_for_http(f"{self.url}/healthz", timeout=60, process=self.server)
        except RuntimeError as exc:
            raise RuntimeError(f"central: {exc}; see {self.data_dir / 'central.log'}") from None

    def stop_server(self) -> None:
        """SIGTERM the web server (it drains in under 5 s) and wait for it."""
        if self.server is None or self.server.poll() is not None:
            return
        self.server.terminate()
        try:
            self.server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait()

    def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """Call central's JSON API as the office does; fail loudly on an unexpected answer."""
        headers = {"Authorization": f"Bearer {self.api_token}", **kwargs.pop("headers", {})}
        response = requests.request(method, f"{self.url}{path}", headers=headers, timeout=10, **kwargs)
        if response.status_code >= 300:
            raise RuntimeError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json()

    def _letters(self) -> list[str]:
        """The text of every e-mail the mail catcher holds, oldest first."""
        assert self.mail is not None
        return [approval.mail_text(m) for m in self.mail.messages]

    def seed(self) -> dict[str, Any]:
        """Create one meeting per code scheme with one registered delegate each; return their codes."""
        now = datetime.now(UTC)
        organisation, *others = [self.api("POST", "/api/v1/organisations", json=org) for org in ORGANISATIONS]
        people = {
            "compact": ("Nguyễn Thị Hoà", "Phó Giám đốc", "hoa.nguyen@stp.demo.vn"),
            "signed": ("Trần Văn Đức", "Chánh Văn phòng", "duc.tran@stp.demo.vn"),
        }
        seeded: dict[str, Any] = {}
        assert self.mail is not None
        leader = approval.log_in(self.url, LEADER, self.leader_password, timeout=10)
        for scheme, (name, position, email) in people.items():
            body: dict[str, Any] = {
                "title": f"Họp giao ban UBND thành phố ({'mã ngắn' if scheme == 'compact' else 'mã ký số'})",
                "starts_at": (now + timedelta(minutes=30)).isoformat(),
                "ends_at": (now + timedelta(hours=4)).isoformat(),
                "main_venue_id": self.halls["main" if scheme == "compact" else "room"],
                "chair": "Chủ tịch UBND thành phố",
                "scheme": scheme,
            }
            if scheme == "compact":
                # A remote point in half an hour is later than the booking rule allows (3 working days): the
                # leader books it, with the reason the rule asks for (audited as meeting.booking_override).
                body |= {"remote_venue_ids": [self.halls["remote"]],
                         "booking_override_reason": "Họp trình diễn: lãnh đạo cho phép tổ chức trong ngày"}
            booked = approval.post_as(leader, self.url, "/api/v1/meetings", body)
            if booked.status_code != 201:
                raise RuntimeError(f"POST /api/v1/meetings -> {booked.status_code}: {booked.text}")
            meeting = booked.json()
            draft = self.api(
                "POST", "/api/v1/invitations",
                json={"meeting_id": meeting["id"], "organisation_id": organisation["id"]},
            )
            if scheme == "compact":  # the agenda travels with the invitation (a shared document)
                self.share_agenda(meeting["id"])
            if scheme == "compact":  # the other organisations get drafts the leader can approve in the browser
                for other in others:
                    self.api("POST", "/api/v1/invitations",
                             json={"meeting_id": meeting["id"], "organisation_id": other["id"]})
            invitation = approval.approve(leader, self.url, draft["id"], timeout=10)
            # The organisation registers through the link its office received by e-mail.
            link = approval.wait_for_registration_link(self._letters, invitation["number"], timeout=30)
            before = len(self.mail.messages)
            self.api(
                "POST", f"/api/v1/invitations/{link.number}/delegates",
                headers={"X-Invitation-Secret": link.secret},
                json={"name": name, "position": position, "email": email},
            )
            message = self.mail.wait_for(before + 1, timeout=10)[-1]
            seeded[scheme] = {"meeting": meeting, "invitation": invitation, "name": name, "code": qr_text(message)}
        return seeded

    def share_agenda(self, meeting_id: int) -> None:
        """Upload the meeting's agenda (a small PDF) and share it with the invitees, as the clerk would."""
        from fpdf import FPDF

        pdf = FPDF(format="A5")
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        for line in ("CHUONG TRINH HOP (demo)", "08:00 Khai mac", "08:15 Bao cao tong ket", "10:00 Thao luan"):
            pdf.cell(0, 8, line, new_x="LMARGIN", new_y="NEXT")
        document = self.api("POST", f"/api/v1/meetings/{meeting_id}/documents",
                            files={"file": ("Chương trình họp.pdf", bytes(pdf.output()), "application/pdf")})
        self.api("POST", f"/api/v1/meetings/{meeting_id}/documents/{document['id']}/share", json={"shared": True})

    def start_gate(self) -> None:
        """Register the gate at central, write its TOML, and start it on simulated pins."""
        from gate.app import Gate
        from gate.config import load_config

        registered = self.api(
            "POST", "/api/v1/gates", json={"gate_id": "demo-gate-1", "site_id": "hq", "name": "Cổng chính (demo)"}
        )
        token_file = self.data_dir / "gate.token"
        token_file.write_text(registered["token"] + "\n", encoding="utf-8")
        token_file.chmod(0o600)
        config_path = self.data_dir / "gate.toml"
        assert self.broker is not None
        config_path.write_text(
            GATE_TOML.format(
                data_dir=self.data_dir / "gate", central_url=self.url, token_file=token_file,
                mqtt_port=self.broker.port, status_port=self.status_port,
            ),
            encoding="utf-8",
        )
        self.gate = Gate(load_config(config_path))
        self.gate.start()

    # ----- while running

    def banner(self) -> None:
        """Print where everything is, the accounts, and the steps to try: enough to use the demo without the code."""
        assert self.broker is not None and self.mail is not None and self.mailview is not None
        compact, signed = self.codes["compact"], self.codes["signed"]
        meeting_id = compact["meeting"]["id"]
        from central.auth.roles import ROLE_LABELS_VI

        log_file = self.args.data_dir.resolve().parent / "demo.log"
        _say()
        _say("vaora demo đang chạy / is running")
        _say(f"  Trang web / web address   {self.url}/login")
        _say("  Tài khoản / accounts (tên đăng nhập, mật khẩu, vai trò):")
        for account in ACCOUNTS:
            _say(f"    {account.username:<11} {self.passwords[account.username]:<18} "
                 f"{ROLE_LABELS_VI[account.role]}: {account.does}")
        _say(f"  Hộp thư demo (mail)       {self.mailview.url}  (Maildir: {self.data_dir / 'mail'})")
        _say(f"  Mail catcher              smtp://{self.mail.host}:{self.mail.port}")
        _say(f"  SMS                       không gửi thật: ghi vào {self.data_dir / 'central.log'} "
             "(dòng 'sms (log only)', mã trong đường dẫn được che)")
        _say(f"  Nhật ký / logs            {self.data_dir / 'central.log'} (central), {log_file} (demo, cổng)")
        _say(f"  Central API       {self.url}/api/v1/openapi.json")
        _say(f"  Điểm danh (attendance)  curl -H 'Authorization: Bearer {self.api_token}' "
             f"{self.url}/api/v1/meetings/{meeting_id}/attendance")
        _say(f"  Mosquitto         mqtt://{self.broker.host}:{self.broker.port}  (topics vaora/v1/#)")
        _say(f"  Trang bảo vệ (guard page)  http://127.0.0.1:{self.status_port}/")
        _say(f"  Gate config       {self.data_dir / 'gate.toml'}  (simulated pins, fail_mode secure)")
        _say()
        _say("Thử ngay / try it:")
        _say(f"  1. Mở {self.url}/login và đăng nhập: {ORGANISER} / {self.passwords[ORGANISER]}")
        _say(f"  2. Mở trang điểm danh trực tiếp: {self.url}/meetings/{meeting_id}/truc-tiep")
        _say(f"  3. Gõ (hoặc dán) mã của {compact['name']} vào cửa sổ này rồi Enter: {compact['code']}")
        _say(f"     Cổng mở, và {compact['name']} hiện trên trang điểm danh trong vài giây.")
        _say(f"  4. Thư mời và mã QR đã gửi: {self.mailview.url}. Lãnh đạo ({LEADER}) còn "
             f"{len(ORGANISATIONS) - 1} thư mời chờ duyệt tại {self.url}/invitations/")
        _say()
        _say("Mã để thử / codes to try (type or paste one, then Enter):")
        _say(f"  {compact['name']} — {compact['invitation']['number']} — mã ngắn (compact):")
        _say(f"      {compact['code']}      (printed on the ticket as {format_compact(compact['code'])})")
        _say(f"  {signed['name']} — {signed['invitation']['number']} — mã ký số (signed):")
        _say(f"      {signed['code']}")
        _say(f"  A code nobody was given (refused):  {generate_compact()}")
        _say()
        _say("Ctrl-C để dừng / to stop.")
        _say()

    def watch(self) -> None:
        """Print each decision as the guard would see it, and when central acknowledges it."""
        shown = 0
        pending: dict[str, str] = {}
        deadline = time.monotonic() + self.args.seconds if self.args.seconds else None
        while not self.stopping.wait(0.1):
            if deadline is not None and time.monotonic() >= deadline:
                return
            while self.gate.scans_handled > shown:
                shown += 1
                record = self.gate.recent[0]
                who = f" — {record.name} ({record.organisation})" if record.name else ""
                mark = "MỞ CỬA / OPEN   " if record.allowed else "TỪ CHỐI / REFUSED"
                _say(f"[{mark}] {describe(record.reason)} / {describe(record.reason, 'en')}{who}")
                pending[record.checkin_id] = record.reason.value
            for checkin_id in list(pending):
                row = self.gate.cache.outbox_row(checkin_id)
                if row is not None and row.delivered_at is not None:
                    _say(f"    trung tâm đã nhận / central acknowledged check-in {checkin_id[:8]}")
                    del pending[checkin_id]

    # ----- shutdown

    def stop(self) -> None:
        """Stop in reverse order: gate first (relay to its safe level), then central, mail, broker."""
        self.stopping.set()
        for name, action in (
            ("gate", lambda: self.gate and self.gate.stop()),
            ("ingest", lambda: self.ingest and self.ingest.stop()),
            ("change feed", lambda: self.feed and self.feed.stop()),
            ("http", self.stop_server),
            ("mail", lambda: self.mail and self.mail.stop()),
            ("mailbox page", lambda: self.mailview and self.mailview.stop()),
            ("broker", lambda: self.broker and self.broker.stop()),
        ):
            try:
                action()
            except Exception:
                log.exception("demo: stopping %s failed", name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until Ctrl-C (or ``--seconds``)."""
    args = _parser().parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=str(args.data_dir.parent / "demo.log"), level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    demo = Demo(args)
    signal.signal(signal.SIGTERM, lambda *_: demo.stopping.set())
    try:
        demo.start()
        demo.banner()
        demo.watch()
    except KeyboardInterrupt:
        pass
    finally:
        _say("Đang dừng / stopping ...")
        demo.stop()
        _say("Đã dừng / stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
