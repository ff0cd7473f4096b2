"""Meeting documents (tài liệu họp): PDF, DOCX or XLSX, checked by content, stored under the data dir.

The type is decided by the bytes (PDF header; for DOCX/XLSX an Office Open XML zip with the part that
kind requires), and the file name's extension must agree with it. Files are stored under a random name;
the original name is kept only for display and download.

A document the office marks as shared (:func:`set_shared`) travels to the invited organisations: it is linked
from the invitation e-mail and listed on the registration page, and downloads with the invitation's secret
(:func:`shared_documents`, :func:`record_download`, each download audited).
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
import uuid
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

from central.core.audit import audit
from central.core.db import database
from central.core.errors import InvalidInputError, NotFoundError
from central.meetings.models import Meeting, MeetingDocument
from protocols.reasons import Reason

log = logging.getLogger(__name__)

KINDS: dict[str, str] = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
"""Accepted kinds and the MIME type each is served with."""

_OOXML_PART = {"docx": "word/document.xml", "xlsx": "xl/workbook.xml"}
MAX_FILENAME = 200


class DocumentTooLargeError(InvalidInputError):
    """The file is over the configured limit."""


def sniff_kind(data: bytes) -> str | None:
    """Return ``pdf``, ``docx`` or ``xlsx`` from the file's bytes, or None for anything else."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError, OSError):
            return None
        if "[Content_Types].xml" not in names:
            return None
        for kind, part in _OOXML_PART.items():
            if part in names:
                return kind
    return None


def clean_filename(name: Any) -> str:
    """Return a display-safe file name (no path, no control characters, at most 200 characters)."""
    if not isinstance(name, str):
        return ""
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", name))[-1].strip()
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    if len(base) > MAX_FILENAME:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: MAX_FILENAME - len(ext) - 1] + dot + ext) if dot else base[:MAX_FILENAME]
    return base


def add_document(
    meeting: Meeting,
    filename: Any,
    data: bytes,
    *,
    data_dir: Path,
    max_bytes: int,
    actor: str,
    now: datetime,
) -> MeetingDocument:
    """Check and store a document for ``meeting``; raises ``InvalidInputError`` (field ``file``) when it is
    empty, too large, not a PDF/DOCX/XLSX by content, or named with another type's extension."""
    name = clean_filename(filename)
    if not data or not name:
        raise InvalidInputError({"file": "Chưa chọn tệp"})
    if len(data) > max_bytes:
        raise DocumentTooLargeError({"file": f"Tệp quá lớn (tối đa {max_bytes // (1024 * 1024)} MB)"})
    kind = sniff_kind(data)
    if kind is None:
        raise InvalidInputError({"file": "Chỉ nhận tệp PDF, DOCX hoặc XLSX"})
    extension = name.rpartition(".")[2].lower() if "." in name else ""
    if extension != kind:
        raise InvalidInputError({"file": f"Phần mở rộng của tệp không khớp nội dung (nội dung là {kind.upper()})"})
    stored_name = f"{uuid.uuid4().hex}.{kind}"
    folder = data_dir / "documents"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / stored_name
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)
    try:
        with database.atomic():
            document = MeetingDocument.create(
                meeting=meeting,
                filename=name,
                kind=kind,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                stored_name=stored_name,
                uploaded_by=actor,
                uploaded_at=now,
            )
            audit(actor, "document.upload", f"meeting:{meeting.id}",
                  {"document": document.id, "filename": name, "size": len(data)}, now=now)
    except Exception:
        path.unlink(missing_ok=True)
        raise
    log.info("document stored meeting=%s kind=%s size=%d", meeting.id, kind, len(data))
    return document


def remove_document(document_id: int, *, data_dir: Path, actor: str, now: datetime) -> None:
    """Delete a document and its file."""
    document = get_document(document_id)
    with database.atomic():
        audit(actor, "document.delete", f"meeting:{document.meeting_id}",
              {"document": document.id, "filename": document.filename}, now=now)
        document.delete_instance()
    (data_dir / "documents" / document.stored_name).unlink(missing_ok=True)


def get_document(document_id: int) -> MeetingDocument:
    """Return the document or raise :class:`NotFoundError`."""
    document = MeetingDocument.get_or_none(MeetingDocument.id == document_id)
    if document is None:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy tài liệu")
    return document


def document_path(document: MeetingDocument, data_dir: Path) -> Path:
    """Return where the document's bytes are stored."""
    return data_dir / "documents" / document.stored_name


def set_shared(document_id: int, shared: bool, *, actor: str, now: datetime) -> MeetingDocument:
    """Share a document with the invited organisations (or stop sharing it); audited."""
    document = get_document(document_id)
    with database.atomic():
        document.shared = bool(shared)
        document.save()
        audit(actor, "document.share" if shared else "document.unshare", f"meeting:{document.meeting_id}",
              {"document": document.id, "filename": document.filename}, now=now)
    return document


def shared_documents(meeting_id: int) -> list[MeetingDocument]:
    """The meeting's documents shared with its invitees, oldest first."""
    return list(MeetingDocument.select().where(
        (MeetingDocument.meeting == meeting_id) & (MeetingDocument.shared == True)  # noqa: E712 - peewee
    ).order_by(MeetingDocument.uploaded_at, MeetingDocument.id))


def shared_document(meeting_id: int, document_id: int) -> MeetingDocument:
    """Return a document of the meeting that is shared with its invitees, else raise :class:`NotFoundError`."""
    document = MeetingDocument.get_or_none(MeetingDocument.id == document_id)
    if document is None or document.meeting_id != meeting_id or not document.shared:
        raise NotFoundError(Reason.UNKNOWN_CODE, "Không tìm thấy tài liệu")
    return document


def record_download(document: MeetingDocument, *, invitation_id: int, number: str, now: datetime) -> None:
    """Audit an invited organisation's download of a shared document (who: the invitation's number)."""
    audit(f"invitation:{number}", "document.download", f"meeting:{document.meeting_id}",
          {"document": document.id, "filename": document.filename, "invitation": invitation_id}, now=now)


def document_to_dict(document: MeetingDocument) -> dict[str, Any]:
    """Return the JSON form of a document."""
    return {
        "id": document.id,
        "meeting_id": document.meeting_id,
        "filename": document.filename,
        "kind": document.kind,
        "size": document.size,
        "sha256": document.sha256,
        "uploaded_by": document.uploaded_by,
        "uploaded_at": document.uploaded_at.isoformat(),
        "shared": bool(document.shared),
    }
