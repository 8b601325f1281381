"""Which monthly input files are present, and a fingerprint of each month's content.

The file-landing sensor compares fingerprints with the ones it saw last time: a month is
re-run when its files appear or their content changes, never because a file was only touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from conversionflow_dagster.core.ingest.events import is_per_month, month_file

CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def month_fingerprints(templates: Iterable[Path], months: Iterable[str]) -> dict[str, str]:
    """Month -> fingerprint of all its files, for the months whose files all exist.

    Only per-month templates (with ``{month}``) are watched: a single file for all months
    cannot say which month changed.
    """
    watched = [t for t in templates if is_per_month(t)]
    out = {}
    for month in months:
        paths = [month_file(t, month) for t in watched]
        if watched and all(p.is_file() for p in paths):
            out[month] = hashlib.blake2b(
                "|".join(file_digest(p) for p in paths).encode(), digest_size=8
            ).hexdigest()
    return out


def changed_months(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    """Months that are new or whose fingerprint differs, oldest first."""
    return sorted(m for m, fingerprint in current.items() if previous.get(m) != fingerprint)
