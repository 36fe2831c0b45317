"""File sinks: NDJSON (plain or gzip) and the people CSV of ``shopsim generate``.

NDJSON (:class:`NdjsonSink`): one JSON document per line, UTF-8, ``\\n``-terminated; the line
formats are documented in :mod:`generator.wire.ndjson`. A target ending in ``.gz`` is written
as deterministic gzip (header ``mtime`` = 0, no file name), so the same seed gives the same
compressed bytes. ``-`` writes to standard output. A regular file is written as
``<name>.partial`` and renamed when closed cleanly, so an interrupted run never leaves a
complete-looking file; devices and pipes (``/dev/null``, a FIFO) are written directly.

People CSV (:class:`PeopleCsvSink`): the layout Customer.io's people CSV import takes, one
row per person that becomes identified, header first::

    id           the person's id identifier (the same id the events use)
    email        email identifier (reserved domains only)
    created_at   account creation, integer Unix seconds (UTC)
    first_name, last_name, phone
    <attr>...    every key of Person.attributes seen in the run, sorted by name

Booleans are written ``true``/``false``, nested values as JSON, missing values empty. The
attribute columns are only known at the end, so rows are spooled to a temporary file and the
CSV is written on close: memory stays flat however many people there are.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO

import orjson

from generator.errors import ShopsimError
from generator.events import Person

_FLUSH_BYTES = 1 << 20
PEOPLE_COLUMNS = ("id", "email", "created_at", "first_name", "last_name", "phone")


def _open_partial(path: Path) -> tuple[IO[bytes], Path]:
    partial = path.with_name(path.name + ".partial")
    try:
        return open(partial, "wb"), partial
    except OSError as exc:
        raise ShopsimError(f"cannot write {path}: {exc.strerror or exc}") from None


class NdjsonSink:
    """Writes pre-encoded NDJSON lines to a file (``.gz`` = gzip) or ``-`` (stdout), buffered."""

    def __init__(self, target: str | Path) -> None:
        self.target = str(target)
        self.lines = 0
        self.bytes = 0
        self._buffer: list[bytes] = []
        self._pending = 0
        self._partial: Path | None = None
        self._raw: IO[bytes] | None = None
        self._out: IO[bytes] | BinaryIO | gzip.GzipFile
        if self.target == "-":
            self._out = sys.stdout.buffer
            return
        path = Path(self.target)
        if path.exists() and not path.is_file():
            # /dev/null, a FIFO, /dev/stdout: write straight through, nothing to rename.
            try:
                self._raw = open(path, "wb")  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise ShopsimError(f"cannot write {path}: {exc.strerror or exc}") from None
        else:
            self._raw, self._partial = _open_partial(path)
        if path.suffix == ".gz":
            # filename="" and mtime=0: the gzip header carries nothing that varies between runs.
            self._out = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6)
        else:
            self._out = self._raw

    def write(self, data: bytes, lines: int = 1) -> None:
        """Append ``lines`` complete lines (``data`` ends with ``\\n``)."""
        self._buffer.append(data)
        self._pending += len(data)
        self.lines += lines
        if self._pending >= _FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            data = b"".join(self._buffer)
            self._out.write(data)
            self.bytes += len(data)
            self._buffer.clear()
            self._pending = 0

    def close(self, *, ok: bool = True) -> None:
        """Flush and close; on success rename ``.partial`` to the target, else remove it."""
        try:
            if ok:
                self._flush()
            if self._raw is None:
                if ok:
                    self._out.flush()
                return
            if self._out is not self._raw:
                self._out.close()
            self._raw.close()
        finally:
            if self._partial is not None:
                if ok:
                    os.replace(self._partial, self.target)
                else:
                    self._partial.unlink(missing_ok=True)
                self._partial = None

    def __enter__(self) -> NdjsonSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(ok=kind is None)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return orjson.dumps(value, default=dict).decode()


class PeopleCsvSink:
    """Collects identified people and writes the people CSV (see the module docstring) on close."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        # The CSV is written at the end: a target that cannot be one fails now, not after the run.
        if self.target.is_dir():
            raise ShopsimError(f"cannot write {self.target}: Is a directory")
        if not self.target.parent.is_dir():
            raise ShopsimError(f"cannot write {self.target}: no directory {self.target.parent}")
        self.rows = 0
        self._attributes: set[str] = set()
        self._spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._closed = False

    def write(self, person: Person) -> None:
        """Add one identified person."""
        self._attributes.update(person.attributes)
        row = {
            "id": person.user_id,
            "email": person.email,
            "created_at": person.created_ms // 1000,
            "first_name": person.first_name,
            "last_name": person.last_name,
            "phone": person.phone,
            "attributes": person.attributes,
        }
        self._spool.write(orjson.dumps(row, default=dict, option=orjson.OPT_APPEND_NEWLINE))
        self.rows += 1

    def close(self, *, ok: bool = True) -> None:
        """Write the CSV (header + rows) if ``ok``; always release the spool."""
        if self._closed:
            return
        self._closed = True
        try:
            if not ok:
                return
            extra = sorted(self._attributes - set(PEOPLE_COLUMNS))
            raw, partial = _open_partial(self.target)
            try:
                with io.TextIOWrapper(raw, encoding="utf-8", newline="") as text:
                    writer = csv.writer(text, lineterminator="\n")
                    writer.writerow((*PEOPLE_COLUMNS, *extra))
                    self._spool.seek(0)
                    for line in self._spool:
                        row = orjson.loads(line)
                        attrs = row["attributes"]
                        writer.writerow(
                            [_cell(row[c]) for c in PEOPLE_COLUMNS]
                            + [_cell(attrs.get(name)) for name in extra]
                        )
                os.replace(partial, self.target)
            except OSError as exc:
                partial.unlink(missing_ok=True)
                raise ShopsimError(f"cannot write {self.target}: {exc.strerror or exc}") from None
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
        finally:
            self._spool.close()

    def __enter__(self) -> PeopleCsvSink:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(ok=kind is None)
