"""Settings for the e2e *web server*: `shop.settings` exactly, except where static files are collected.

With DEBUG off, `shop.settings` serves static files through WhiteNoise's manifest storage,
so every page (the login form, the admin) needs `collectstatic` to have run, as the
Dockerfile does at build time. `STATIC_ROOT` is fixed to `<repo>/staticfiles` in
`shop.settings`; the e2e fixtures collect into a temporary folder instead of writing into
the work tree, so this module moves `STATIC_ROOT` there and changes nothing else.
"""

import os

from shop.settings import *  # noqa: F403

STATIC_ROOT = os.environ["E2E_STATIC_ROOT"]
