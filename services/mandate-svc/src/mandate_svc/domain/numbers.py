"""The mandate number Koppel asks Twikey to give a mandate (Twikey's ``mandateNumber``).

Derived from our mandate id, so every attempt to invite one mandate names the same Twikey mandate
(a lost answer is looked up by it, and Twikey refuses a second mandate under it), and a feed
message for it leads back to our mandate even if the invite's answer never reached us.

A SEPA mandate reference (UMR) is at most 35 characters of ``a-z A-Z 0-9 / - ? : ( ) . , ' +``
and space, no special character first or last; Twikey advises starting with a letter. ``KOP`` and
the 32 hex digits of the id, upper case, are exactly 35 of those.
"""

from __future__ import annotations

import re
import uuid

PREFIX = "KOP"
_OURS = re.compile(rf"^{PREFIX}([0-9A-F]{{32}})$")


def twikey_number(mandate_id: str) -> str:
    return PREFIX + uuid.UUID(mandate_id).hex.upper()


def mandate_id_of(number: str) -> str | None:
    """Our mandate id if ``number`` is one we derived, else None."""
    found = _OURS.match(number.strip().upper())
    return str(uuid.UUID(found.group(1))) if found else None
