"""The SEPA character set every text sent to Twikey must keep to, and the opt-in transliteration
into it.

Twikey refuses a transaction whose message has a character outside the set with
``err_invalid_sepachars``; banks apply the same rule to the remittance text. The set is the EPC's
basic Latin subset (EPC217-08, "SEPA requirements for an extended character set"): a-z, A-Z,
0-9, ``/ - ? : ( ) . , ' +`` and the space. Anything else — accented letters, ``&``, ``_``,
``<``, ``€``, typographic dashes and quotes, control characters — is refused at the edge, or, when
the tenant opts in, transliterated (``ë`` → ``e``, ``ß`` → ``ss``, ``€`` → ``EUR``) with what still
has no form in the set dropped.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from anyascii import anyascii

SEPA_CHARACTERS = frozenset(string.ascii_letters + string.digits + "/-?:().,'+ ")


@dataclass(frozen=True)
class BadCharacter:
    position: int  # 1 = the first character
    character: str

    @property
    def code_point(self) -> str:
        return f"U+{ord(self.character):04X}"

    def describe(self) -> str:
        return f"{self.character!r} ({self.code_point}) at position {self.position} is not a SEPA character"


def first_bad_character(text: str) -> BadCharacter | None:
    for index, char in enumerate(text):
        if char not in SEPA_CHARACTERS:
            return BadCharacter(index + 1, char)
    return None


def transliterate(text: str) -> str:
    """The text in the SEPA set: transliterated to ASCII, characters still outside the set dropped,
    runs of spaces folded into one, stripped."""
    ascii_text = anyascii(text)
    kept = "".join(c if c in SEPA_CHARACTERS else (" " if c.isspace() else "") for c in ascii_text)
    return " ".join(kept.split())
