"""What ``update`` and ``extend`` send (only the fields given, as ``PATCH`` takes them), and who
wrote a change: ``--by NAME`` in every body, and with a DynamoDB store the AWS caller identity
in the history record."""

from __future__ import annotations

import argparse

from gateway.errors import StoreError
from gateway.state import format_time, safe_text
from gateway.stores import Store

# What the history records when the AWS identity could not be had (the write goes ahead).
UNKNOWN_CALLER = "unknown"


def with_by(body: dict[str, object], args: argparse.Namespace) -> dict[str, object]:
    """``body`` with ``by`` when --by was given (left out otherwise: a gateway of an older version
    refuses fields it does not know, and a change without --by needs none)."""
    by = vars(args).get("by")
    # Undecodable bytes in argv arrive as lone surrogates; repaired as --reason is, then checked.
    return {**body, "by": safe_text(by)} if by is not None else body


def update_body(args: argparse.Namespace) -> dict[str, object]:
    """``update``'s flags as a PATCH body: only what was given."""
    body: dict[str, object] = {}
    if args.message is not None:
        body["message"] = safe_text(args.message)
    if args.duration_seconds is not None:
        body["duration_seconds"] = args.duration_seconds
    if args.ends_at is not None:
        body["ends_at"] = format_time(args.ends_at)
    if args.starts_at is not None:
        body["starts_at"] = format_time(args.starts_at)
    if args.mode is not None:
        body["mode"] = args.mode
    if args.scope is not None:
        body["scope"] = list(args.scope)  # [] for --whole-site
    if args.reason is not None:
        body["reason"] = safe_text(args.reason)
    return with_by(body, args)


def extend_body(args: argparse.Namespace) -> dict[str, object]:
    """``extend``'s flags as a PATCH body: how far the end moves, and maybe why."""
    body: dict[str, object] = {}
    if args.extend_seconds is not None:
        body["extend_seconds"] = args.extend_seconds
    if args.extend_until is not None:
        body["extend_until"] = format_time(args.extend_until)
    if args.reason is not None:
        body["reason"] = safe_text(args.reason)
    return with_by(body, args)


def caller_record(store: Store) -> tuple[dict[str, str] | None, str | None]:
    """What the history record of a CLI write to ``store`` adds about the writer, and why the AWS
    identity is unknown (None when it is known, or the store is not on AWS).

    Asked once per write, before it; a failure never stops the write: "unknown" is recorded."""
    identify = getattr(store, "caller_identity", None)
    if identify is None:
        return None, None
    try:
        arn = identify()
    except StoreError as exc:
        return {"aws_caller": UNKNOWN_CALLER}, str(exc)
    return {"aws_caller": str(arn)}, None
