"""Who is calling: the state plus the identity behind the access token and the office chosen in
the SOAP header. Passed to every ProcessXml handler."""

from __future__ import annotations

from dataclasses import dataclass

from .state import Office, SandboxState


@dataclass
class Context:
    state: SandboxState
    client_id: str
    organisation: str
    user: str
    office: Office | None  # the header's CompanyCode/CompanyId, None only for `list offices`

    def office_for(self, code: str | None) -> Office | None:
        """The office named in a message body (falling back to the header's), if the token's
        organisation may use it. Records are per office (reference §2.3)."""
        if not code:
            return self.office
        office = self.state.offices.get(code)
        if office is None or office.organisation != self.organisation:
            return None
        return office

    @property
    def language(self) -> str:
        """The user's language for messages (``nl`` unless the control API set another)."""
        return getattr(self.state, "user_languages", {}).get((self.organisation, self.user), "nl")
