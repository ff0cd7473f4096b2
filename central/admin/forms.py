"""Administration forms (validation is the services'; the forms carry CSRF and render fields)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, TelField, TextAreaField

from central.web.inputs import bounded_int


class UserForm(FlaskForm):
    """Create or edit a user."""

    username = StringField(_l("Tên đăng nhập"))
    full_name = StringField(_l("Họ và tên"))
    position = StringField(_l("Chức vụ"))
    email = EmailField(_l("Email"))
    role = SelectField(_l("Vai trò"), validate_choice=False)
    organisation_id = SelectField(_l("Đơn vị (cho cán bộ đăng ký)"), coerce=bounded_int, validate_choice=False)
    password = PasswordField(_l("Mật khẩu"))
    active = BooleanField(_l("Đang hoạt động"), default=True)


class OrganisationForm(FlaskForm):
    """Create or edit an organisation with its leader's and office's contacts."""

    name = StringField(_l("Tên đơn vị"))
    leader_name = StringField(_l("Lãnh đạo đơn vị"))
    leader_phone = TelField(_l("Điện thoại lãnh đạo"))
    leader_email = EmailField(_l("Email lãnh đạo"))
    office_phone = TelField(_l("Điện thoại văn phòng"))
    office_email = EmailField(_l("Email văn phòng"))


class VenueForm(FlaskForm):
    """Create or edit a venue."""

    name = StringField(_l("Tên địa điểm"))
    kind = SelectField(_l("Loại"), choices=[("main", _l("Hội trường chính")), ("remote", _l("Điểm cầu"))],
                       validate_choice=False)
    site_id = StringField(_l("Mã khu vực cổng (site)"))
    address = StringField(_l("Địa chỉ"))


class IssuingBodyForm(FlaskForm):
    """Create or edit a body that issues giấy mời (its letterhead after Decree 30/2020)."""

    parent_name = StringField(_l("Cơ quan chủ quản (ví dụ: UBND tỉnh Quảng Ngãi)"))
    name = StringField(_l("Cơ quan ban hành (ví dụ: Văn phòng)"))
    doc_symbol = StringField(_l("Ký hiệu loại văn bản"), default="GM")
    body_symbol = StringField(_l("Ký hiệu cơ quan ban hành"), default="UBND")
    place = StringField(_l("Địa danh ghi ở dòng ngày tháng"))
    signing_authority = StringField(_l("Thẩm quyền ký (ví dụ: KT. CHÁNH VĂN PHÒNG)"))
    signer_position = StringField(_l("Chức vụ người ký"))
    signer_name = StringField(_l("Họ tên người ký"))
    recipients = TextAreaField(_l("Nơi nhận khác (mỗi dòng một nơi; “Như trên” và “Lưu: VT” tự thêm)"))
    is_default = BooleanField(_l("Dùng mặc định cho thư mời"))
