"""The client's durable state: what a phone keeps in its local database, here one JSON file.

It holds the resume cursor, the last applied seq of every conversation and of the user's own
events, and the session's tokens. Every save is atomic (write a temporary file, fsync, rename
over the old one, fsync the directory): a crash leaves either the old state or the new one,
never half of each. The cursor is only saved together with the effect of the item it came
with, so a resumed stream never skips an item the client had not applied.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from echo_client import Tokens  # the session this device signed in with (TokenPair)


@dataclass
class State:
    """Everything the client must remember across restarts."""

    # The `cursor` of the last applied SubscribeResponse that had one ("" = none yet).
    cursor: str = ""
    # conversation_id -> highest seq whose effect is applied (events up to it are reflected).
    conversations: dict[str, int] = field(default_factory=dict)
    # The highest user-event seq applied; None until the first one is seen.
    user_seq: int | None = None
    tokens: Tokens | None = None


class StateFile:
    """A State and the file it lives in."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.state = self._load()

    def _load(self) -> State:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return State()
        tokens = raw.get("tokens")
        return State(
            cursor=raw.get("cursor", ""),
            conversations={str(k): int(v) for k, v in raw.get("conversations", {}).items()},
            user_seq=raw.get("user_seq"),
            tokens=Tokens(**tokens) if tokens else None,
        )

    def save(self) -> None:
        """Atomically replaces the file with the current state (readable by the owner only:
        it holds a refresh token)."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps(asdict(self.state), indent=1, sort_keys=True).encode("utf-8")
        fd, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
        try:
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), 0o600)
                file.write(body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        # The rename itself is only durable once the directory entry is on disk.
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
