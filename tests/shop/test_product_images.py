"""Product images: staff upload them in the admin (known formats, a size cap, real images only), the catalog and
the product page show them, and the demo catalog ships its own."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from PIL import Image

from shop.models import Product
from tests.factories import ProductFactory

pytestmark = pytest.mark.django_db


def picture(*, size=(64, 48), format="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buffer, format=format)
    return buffer.getvalue()


def upload(name: str, content: bytes):
    return SimpleUploadedFile(name, content)


def change(staff_client, product, image):
    data = {
        "name": product.name,
        "slug": product.slug,
        "description": product.description,
        "price": str(product.price),
        "stock": product.stock,
        "is_active": "on",
        "image": image,
    }
    return staff_client.post(reverse("admin:shop_product_change", args=[product.pk]), data)


def test_staff_upload_an_image_and_the_catalog_and_product_page_show_it(staff_client, client):
    product = ProductFactory(name="Hand Grinder")

    response = change(staff_client, product, upload("grinder.png", picture(size=(64, 48))))

    assert response.status_code == 302
    product.refresh_from_db()
    assert product.image.name.startswith("products/grinder") and (product.image_width, product.image_height) == (64, 48)
    catalog = client.get(reverse("shop:home")).text
    assert f'src="{product.image.url}"' in catalog and 'width="64" height="48"' in catalog
    assert 'alt="Hand Grinder"' in client.get(product.get_absolute_url()).text
    served = client.get(product.image.url)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    with product.image.open("rb") as stored:
        assert b"".join(served.streaming_content) == stored.read()


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("notes.png", b"not an image at all", "Upload a valid image"),
        ("grinder.gif", picture(format="GIF"), "File extension “gif” is not allowed"),
        ("huge.png", picture(size=(4001, 10)), "at most 4000 on either side"),
    ],
)
def test_an_upload_that_is_no_image_of_a_known_format_or_too_big_is_refused_and_nothing_is_stored(
    staff_client, name, content, error
):
    product = ProductFactory()

    response = change(staff_client, product, upload(name, content))

    assert response.status_code == 200
    assert error in response.text
    product.refresh_from_db()
    assert not product.image


def test_an_upload_over_the_byte_limit_is_refused(staff_client, settings):
    settings.PRODUCT_IMAGE_MAX_BYTES = 1000
    product = ProductFactory()

    response = change(staff_client, product, upload("big.png", picture(size=(400, 400))))

    assert "at most 1000" in response.text.replace("\xa0", " ")
    product.refresh_from_db()
    assert not product.image


def test_a_product_without_an_image_shows_no_broken_picture(client):
    ProductFactory(name="Coffee Scale")
    assert "product-image" not in client.get(reverse("shop:home")).text


def test_the_demo_catalog_has_a_picture_for_every_product(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")  # again: the same pictures, none added

    products = list(Product.objects.all())
    assert products and all(product.image and product.image_width == 480 for product in products)
    assert len({product.image.name for product in products}) == len(products)
