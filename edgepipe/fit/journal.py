"""The search's state on disk, so an interrupted fit resumes where it stopped and gives the same result.

A fit writes its candidates' builds and a journal into a state folder
beside the output folder (``.<out>.fit/``), never into the output folder
itself, which receives only the finished result (as ``build`` writes it).
The journal is ``trials.jsonl``: one line per finished candidate, appended
a whole batch at a time and flushed to disk, so a batch is either in it
or not. A resumed search replays the journal into a new study and goes on
from the next batch; because each batch's sampler is seeded from the seed
and the batch number alone (:mod:`edgepipe.fit.search`), it then proposes
exactly what the uninterrupted search would have.

``state.json`` records what the search was for (target, config, data,
overrides, seed, batch size). A different request starts afresh and says
so; ``--fresh`` forces that.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from edgepipe.emit.files import write_json
from edgepipe.fit.trial import TrialRecord

STATE_VERSION = 1


def state_dir_for(out: Path) -> Path:
    """``build/model`` -> ``build/.model.fit``."""
    out = Path(out).absolute()
    return out.parent / f".{out.name}.fit"


@dataclass
class Journal:
    folder: Path
    resumed: int = 0
    discarded: str | None = None

    @classmethod
    def open(cls, folder: Path, request: dict, fresh: bool = False) -> "Journal":
        """The journal for ``request``: resumed when the folder holds the same request, else started anew."""
        state = folder / "state.json"
        discarded = None
        if folder.exists():
            same = _read_state(state) == {"version": STATE_VERSION, **request}
            if fresh or not same:
                discarded = "--fresh was given" if fresh else "the previous search was for another request"
                shutil.rmtree(folder)
        (folder / "trials").mkdir(parents=True, exist_ok=True)
        if not state.exists():
            write_json(state, {"version": STATE_VERSION, **request})
        journal = cls(folder, discarded=discarded)
        journal.resumed = len(journal.records())
        return journal

    @property
    def path(self) -> Path:
        return self.folder / "trials.jsonl"

    def trial_dir(self, number: int) -> Path:
        return self.folder / "trials" / f"{number:04d}"

    def folder_of(self, record: TrialRecord) -> Path:
        """Where ``record`` was built, in this journal's folder (which may have moved since, with ``--out``)."""
        return self.folder / "trials" / Path(record.out).name

    def records(self) -> list[TrialRecord]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                out.append(TrialRecord.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                break  # a line cut by a crash mid-write: the batch it began is run again
        return out

    def append(self, records: list[TrialRecord]) -> None:
        """Add a finished batch, flushed to disk, all lines at once."""
        text = "".join(json.dumps(r.to_dict(), allow_nan=False, default=str) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())


def _read_state(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
