"""notify-svc's tables (its own database; no other service reads them)."""

from __future__ import annotations

import sqlalchemy as sa

from koppel_shared.messaging.tables import metadata as messaging_metadata

metadata = sa.MetaData()

TARGET_METADATA = (metadata, messaging_metadata)
