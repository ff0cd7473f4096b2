"""Retention of personal data: how long each kind is kept (:mod:`.policy`), the purge that anonymises or deletes
what is past it (:mod:`.purge`), and the office's subject-access export and per-person erasure (:mod:`.subjects`)
with its page (:mod:`.views`)."""
