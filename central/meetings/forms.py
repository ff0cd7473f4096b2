"""Forms of the meeting pages (validation is the services'; these carry CSRF and render the fields)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import HiddenField, SelectField, SelectMultipleField, StringField, TextAreaField

from central.web.forms import LocalDateTimeField
from central.web.inputs import bounded_int


class MeetingForm(FlaskForm):
    """Create or edit a meeting."""

    title = StringField(_l("Tên cuộc họp"))
    agenda = TextAreaField(_l("Nội dung, chương trình"))
    chair = StringField(_l("Lãnh đạo chủ trì"))
    starts_at = LocalDateTimeField(_l("Bắt đầu"))
    ends_at = LocalDateTimeField(_l("Kết thúc"))
    registration_deadline = LocalDateTimeField(_l("Hạn đăng ký"))
    main_venue_id = SelectField(_l("Hội trường chính"), coerce=bounded_int, validate_choice=False)
    remote_venue_ids = SelectMultipleField(_l("Điểm cầu"), coerce=bounded_int, validate_choice=False)
    scheme = SelectField(_l("Loại mã vào cổng"), choices=[("compact", _l("Mã ngắn (mặc định)")),
                                                          ("signed", _l("Mã ký số (cổng ngoại tuyến)"))],
                         validate_choice=False)
    entry_policy = SelectField(_l("Số lần vào"), choices=[("single", _l("Một lần")),
                                                         ("reentry", _l("Ra vào lại được")),
                                                         ("unlimited", _l("Không giới hạn"))],
                               validate_choice=False)
    registration_approval = SelectField(_l("Đăng ký đại biểu"),
                                        choices=[("0", _l("Đơn vị đăng ký là có mã ngay")),
                                                 ("1", _l("Văn phòng duyệt từng đại biểu trước khi gửi mã"))],
                                        validate_choice=False)
    booking_override_reason = StringField(_l("Lãnh đạo cho phép đăng ký muộn (lý do)"))
    walkin_policy = SelectField(_l("Khách đăng ký tại bàn tiếp đón"),
                                choices=[("approval", _l("Chờ chuyên viên duyệt")),
                                         ("direct", _l("Cho vào trực tiếp"))],
                                validate_choice=False)


class StatusForm(FlaskForm):
    """Move the meeting to another state."""

    status = HiddenField()


class DocumentForm(FlaskForm):
    """Attach a document."""

    file = FileField(_l("Tệp tài liệu (PDF, DOCX, XLSX)"))


class DraftInvitationsForm(FlaskForm):
    """Draft one invitation per selected organisation."""

    organisation_ids = SelectMultipleField(_l("Đơn vị được mời"), coerce=bounded_int, validate_choice=False)
    delegate_limit = StringField(_l("Số đại biểu tối đa mỗi đơn vị"), render_kw={"inputmode": "numeric"})
    issuing_body_id = SelectField(_l("Cơ quan ban hành giấy mời"), coerce=bounded_int, validate_choice=False,
                                  default=0)


class DeleteForm(FlaskForm):
    """A button that deletes something (CSRF only)."""
