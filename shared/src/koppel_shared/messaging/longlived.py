"""Keeping the cyclic garbage collector off the objects a worker builds when it starts.

A full collection walks every tracked object. After the imports, the SQLAlchemy metadata, the
pydantic models and the broker topology that is about a hundred thousand objects: tens of
milliseconds (hundreds on a busy machine) during which no event moves, which shows as the long
tail of the commit → handled latency. Those objects live as long as the process, so once the
worker is up they are moved out of the collector's sight (``gc.freeze``); later collections walk
only what was allocated since. Nothing is leaked: garbage is collected first, and objects made
later are collected as before.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_long_lived() -> None:
    """Once per process, when the first consumer or relay starts."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
