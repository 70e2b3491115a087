"""Product images: what an upload must be before it is stored, and where it goes.

Django's ImageField already has Pillow open and verify the file (a text file named .png is refused); these add
what a shop needs on top: known formats only, a size cap, and dimensions a page can show.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import FileExtensionValidator
from django.template.defaultfilters import filesizeformat

PRODUCT_IMAGE_FORMATS = ["jpg", "jpeg", "png", "webp"]
PRODUCT_IMAGE_MAX_SIDE = 4000  # pixels, either side

product_image_extension_validate = FileExtensionValidator(allowed_extensions=PRODUCT_IMAGE_FORMATS)


def product_image_size_validate(image) -> None:
    """At most PRODUCT_IMAGE_MAX_BYTES, and no side over PRODUCT_IMAGE_MAX_SIDE pixels."""
    if image.size > settings.PRODUCT_IMAGE_MAX_BYTES:
        limit = filesizeformat(settings.PRODUCT_IMAGE_MAX_BYTES)
        raise ValidationError(f"The image is {filesizeformat(image.size)}; at most {limit}.", code="too_large")
    width, height = getattr(image, "width", 0), getattr(image, "height", 0)
    if max(width or 0, height or 0) > PRODUCT_IMAGE_MAX_SIDE:
        raise ValidationError(
            f"The image is {width}×{height} pixels; at most {PRODUCT_IMAGE_MAX_SIDE} on either side.",
            code="too_big",
        )


def product_image_path(product, filename: str) -> str:
    """Stored under products/, keeping the uploaded name (the storage adds a suffix when one is taken)."""
    return f"products/{filename}"
