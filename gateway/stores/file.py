"""``file:PATH``: the embedded default, a JSON file shared by the processes of one host.

Writes go to a temporary file that replaces the old one, so a reader sees either the
old or the new state, never half of one; a lock file serialises the conditional
writes of several processes. Each change is appended to ``PATH.history`` (JSON lines).
The directory must exist: the store creates its files, never a directory.
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import stat
import tempfile
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gateway.errors import ConflictError, StateError, StoreError
from gateway.state import MAX_VERSION, MaintenanceState
from gateway.stores.base import expected_version, history_record

MAX_FILE_SIZE = 64 * 1024
# Longer than any record the gateway writes (two states of at most a few KiB each, in JSON
# with every character escaped); a longer line was not written by it and is skipped.
MAX_RECORD_LENGTH = 256 * 1024


def open_regular(path: Path, flags: int) -> int:
    """A descriptor for ``path`` if it is a regular file; StoreError naming the path if not.

    O_NONBLOCK: opening a FIFO (or a device) put where the file should be must not wait for
    a writer for ever; it opens at once and is refused here. On a regular file the flag
    changes nothing. FileNotFoundError passes through for the caller to decide.
    """
    try:
        descriptor = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise StoreError(f"{path} is not a regular file") from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise StoreError(f"{path} is not a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


# A state file written for the first time: readable by gateways running as other users.
NEW_FILE_MODE = 0o644


def require_directory(path: str) -> None:
    """ValueError when the directory that is to hold the state file ``path`` does not exist.

    The store creates its file on the first change but never a directory: a mistyped directory
    would otherwise read as "off" and the first change would create it, splitting the state
    between two files.
    """
    directory = Path(path).parent
    try:
        exists = directory.exists()
    except OSError as exc:  # a name too long, a directory that cannot be searched
        raise ValueError(f"the directory {directory} cannot be checked: {exc.strerror or exc}") from None
    if not exists:
        raise ValueError(f"{_no_directory(directory)} (the store creates its file, not directories)")


def _not_a_number(text: str) -> float:
    raise ValueError(f"{text} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is too large a number")
    return value


def _no_directory(directory: Path) -> str:
    return f"the directory {directory} does not exist"


class FileStore:
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.description = f"file:{path}"

    def _target(self) -> Path:
        """The file the state is in: a symlink's target, so that whoever reaches it through a
        link shares its history and its lock too (resolved at each use: a link may change)."""
        return Path(os.path.realpath(self.path))

    def read(self, consistent: bool = False) -> MaintenanceState:
        try:
            with os.fdopen(open_regular(self.path, os.O_RDONLY), "rb") as handle:
                raw = handle.read(MAX_FILE_SIZE + 1)
        except FileNotFoundError as exc:
            if not self.path.parent.exists():  # a wrong path, or a directory removed since: not a first start
                raise StoreError(self._missing_directory("read")) from exc
            return MaintenanceState()  # the first start: nothing was ever written
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if len(raw) > MAX_FILE_SIZE:
            raise StoreError(f"{self.path} is larger than {MAX_FILE_SIZE} bytes; not a state file")
        try:
            item = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # RecursionError: nesting deeper than the parser goes is not a state file either.
            raise StoreError(f"{self.path} is not valid JSON ({exc})") from exc
        if not isinstance(item, dict):
            raise StoreError(f"{self.path} does not hold a JSON object")
        try:
            return MaintenanceState.from_item(item)
        except StateError as exc:
            raise StoreError(f"{self.path}: {exc}") from exc

    def write(
        self, state: MaintenanceState, previous: MaintenanceState | None = None, record: Mapping[str, str] | None = None
    ) -> MaintenanceState:
        target = self._target()
        try:
            with os.fdopen(open_regular(Path(f"{target}.lock"), os.O_RDWR | os.O_CREAT | os.O_APPEND), "a+b") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                # Opened before the state is replaced: a history that cannot be written stops the change.
                history_flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
                with os.fdopen(open_regular(Path(f"{target}.history"), history_flags), "a", encoding="utf-8") as history:
                    current = self.read()
                    expected = expected_version(state, previous)
                    if current.version != expected:
                        raise ConflictError(expected, current.version)
                    self._replace(state, target)
                    history.write(json.dumps(history_record(previous, state, record)) + "\n")
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not self.path.parent.exists():
                raise StoreError(self._missing_directory("write")) from exc
            raise StoreError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        return state

    def _missing_directory(self, action: str) -> str:
        return f"cannot {action} {self.path}: {_no_directory(self.path.parent)}"

    def _replace(self, state: MaintenanceState, target: Path) -> None:
        # The file a symlink names is the one replaced (the link stays, shared by whoever uses
        # it), with the mode it had: mkstemp's 0600 would lock out gateways running as another
        # user, and they would keep serving the old state.
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = NEW_FILE_MODE
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(state.to_item(), handle, indent=2)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._records(limit)

    def last_recorded_version(self) -> int:
        # Every record, not the last line: a history restored or edited by hand need not be in
        # order. Read a line at a time: the history grows with every change, and whatever its
        # size, a write holds one record in memory.
        highest = 0
        for line in self._history_lines():
            record = _record(line)
            version = record.get("version") if record is not None else None
            if type(version) is int and highest < version <= MAX_VERSION:
                highest = version
        return highest

    def _records(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` records of the history, newest first."""
        lines = deque(self._history_lines(), maxlen=limit)
        return [record for record in map(_record, reversed(lines)) if record is not None]

    def _history_lines(self) -> Iterator[str]:
        """The history's lines, one at a time; a line longer than any record is skipped unread."""
        history_path = Path(f"{self._target()}.history")
        try:
            # errors="replace": a stray byte becomes U+FFFD or spoils its own line (skipped), never the whole history.
            with os.fdopen(open_regular(history_path, os.O_RDONLY), encoding="utf-8", errors="replace") as handle:
                while line := handle.readline(MAX_RECORD_LENGTH):
                    if len(line) == MAX_RECORD_LENGTH and not line.endswith("\n"):
                        while (rest := handle.readline(MAX_RECORD_LENGTH)) and not rest.endswith("\n"):
                            pass
                        continue
                    yield line
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read {history_path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        pass


def _record(line: str) -> dict[str, Any] | None:
    """One history line as its record; None for a torn last line (a crash) or a hand-edited one."""
    try:
        # NaN and Infinity (or 1e999) are no JSON a reader of the history can take back.
        record = json.loads(line, parse_constant=_not_a_number, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None  # readers rely on each record being an object
