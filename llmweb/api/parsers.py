"""Request parsers of the API."""

from __future__ import annotations

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class ObjectJSONParser(JSONParser):
    """JSON bodies must be objects: every endpoint takes named fields.

    A JSON array or string sent to ``POST /api/v1/models/`` reached ``request.data.get``
    and answered 500; refusing other shapes here covers every view at once.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if not isinstance(data, dict):
            shape = {list: "an array", str: "a string", type(None): "null"}.get(
                type(data), "a number" if isinstance(data, int | float) else "not an object"
            )
            raise ParseError(f"The body must be a JSON object ({{...}}); this one is {shape}.")
        return data
