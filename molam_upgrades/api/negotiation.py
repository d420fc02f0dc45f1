"""JSON in, JSON out — whatever Content-Type or Accept the client sends."""

from __future__ import annotations

from rest_framework.negotiation import BaseContentNegotiation


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always the JSON parser and renderer.

    The seed's curl examples send JSON bodies without a Content-Type header (curl then says
    ``application/x-www-form-urlencoded``); they must still be read as JSON.
    """

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return (renderer, renderer.media_type)
