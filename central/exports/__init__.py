"""Exports for organisers: the attendance list (danh sách thành phần tham dự) and attendance statistics."""
