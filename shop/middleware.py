"""HTTP middleware of the shop as a whole (wired in shop/settings.py)."""

import re

from django.views.defaults import bad_request

# What PostgreSQL cannot store in text: NUL, and lone surrogates (not encodable as UTF-8). Django decodes
# URLs and form bodies with replacement characters, so no surrogate arrives that way; the check is free.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class RefuseUnstorableInput:
    """Answer 400 to a request whose path, query, form fields or headers hold a character PostgreSQL refuses.

    Why here: such a value reached a query (an order number, an admin filter or search, an autocomplete
    term) and failed there with DataError, a 500. No legitimate request carries one, so it is refused once,
    before any view, instead of in every view and admin filter.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _has_unstorable(request):
            return bad_request(request, exception=None)
        return self.get_response(request)


def _has_unstorable(request) -> bool:
    texts = [request.path, *request.headers.keys(), *request.headers.values()]
    for query in (request.GET, request.POST):  # POST is empty unless the body is a form
        for key, values in query.lists():
            texts += [key, *values]
    texts += [upload.name or "" for upload in request.FILES.values()]
    return any(_UNSTORABLE.search(text) for text in texts)
