"""protocols.cccd.looks_like_cccd: the shape of a citizen ID card's QR, recognised without central's parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.cccd import looks_like_cccd

FULL = "001085012345|123456789|Nguyễn Văn Ánh|15081985|Nam|Số 1 Đinh Tiên Hoàng, Hoàn Kiếm, Hà Nội|20042021"


@pytest.mark.parametrize("text", [
    FULL,
    "001085012345||Nguyễn Văn Ánh|15081985|Nam|Hà Nội|20042021",  # no old ID number
    "001085012345|001085012345|Trần Thị B|01011990",  # old 12-digit number; newer cards leave the rest out
    "001085012345|123456789|Lê C|01011990|||",  # trailing fields empty
    FULL + "\r\n",
])
def test_card_qrs_are_recognised(text: str) -> None:
    assert looks_like_cccd(text)


@pytest.mark.parametrize("text", [
    "",
    "2YJQEPAFQWCPUG",  # a compact code (fixed: pytest-xdist needs every worker to collect the same ids)
    "VR1:ABCDEFGH",
    "00108501234|123456789|Nguyễn Văn Ánh|15081985",  # 11 digits
    "001085012345|12345678|Nguyễn Văn Ánh|15081985",  # old number of 8 digits
    "001085012345|123456789||15081985",  # no name
    "001085012345|123456789|Nguyễn Văn Ánh|1508198",  # date of birth of 7 digits
    "001085012345|123456789|Nguyễn Văn Ánh",  # too few fields
    FULL + "|x",  # too many fields
    "a|b|c|d",
])
def test_other_texts_are_not(text: str) -> None:
    assert not looks_like_cccd(text)


@given(st.text(max_size=300))
def test_never_raises(text: str) -> None:
    assert looks_like_cccd(text) in (True, False)
