"""Twinfield: the ProcessXml documents (lxml) and the HTTP clients for OAuth and ProcessXml."""
