"""Where collectstatic puts the static files: hashed, compressed names (WhiteNoise), inside ES module imports too."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Rewrites `import ... from "./connection.js"` to the hashed name, so a page loaded just before a deploy
    never runs its entry module against the next deploy's modules (they are cached for a minute unhashed)."""

    support_js_module_import_aggregation = True
