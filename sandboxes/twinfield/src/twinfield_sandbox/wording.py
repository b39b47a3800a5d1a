"""Messages in the calling user's language where a public answer shows Twinfield's English
wording; every other message is Dutch (Twinfield answers in the user's language, reference §3.5).
"""

from __future__ import annotations


def dimension_missing(code: str, language: str) -> str:
    """pronamic/wp-twinfield tests/xml/Dimensions/dimension-read-response-dimension-does-not-exists-
    en-GB.xml and -nl-NL.xml."""
    if language == "en":
        return f"Dimension {code} does not exist."
    return f"Dimensie {code} bestaat niet."
