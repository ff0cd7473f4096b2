"""Shared parts of central that import no feature: db, base model, states, audit, changes, keys, errors, context, clock."""  # noqa: E501
