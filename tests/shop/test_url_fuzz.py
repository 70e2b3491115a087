"""Hostile characters in URLs, queries, forms and cookies: a 400 or a 404, never a 500 (issue 21 item 6).

PostgreSQL refuses a NUL in text with DataError; before the fix an order number or an admin filter holding
one was a 500. Every URL pattern in the URLconf, the admin's included, is requested with such input in each
of its path parameters, in the query and in a form body, as an anonymous visitor, a customer and staff.
"""

import re
from urllib.parse import quote, urlencode

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.services import customer_address_create
from notifications.kinds import Channel
from notifications.unsubscribe import unsubscribe_token
from orders.models import OrderStatus
from shop.asgi import application
from tests.factories import CHECKOUT_ADDRESS, ProductFactory, StaffFactory, UserFactory, place_order

pytestmark = pytest.mark.django_db

# A NUL alone, inside a value and at its end; an encoded lone surrogate (U+D800 in UTF-8) and a stray byte,
# which Django decodes to a replacement character; quotes and markup; a right-to-left override; digits past
# any integer column; a Unicode digit; a path climb.
HOSTILE = ["\x00", "SO-000001\x00", "a\x00b", "%ED%A0%80", "%FF", "'\"<>;--", "\u202e", "9" * 30, "١", "..%2F..%2F"]
NUL_FREE = [value for value in HOSTILE if "\x00" not in value]
QUERY_KEYS = ["q", "o", "p", "e", "page", "next", "after", "status", "created_at__gte", "_changelist_filters", "term"]

_CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")
_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^)]*)\)")


def _url_templates(patterns, prefix: str = "") -> list[str]:
    """Every URL pattern as a path template: literal text with `{name}` where each parameter goes."""
    templates = []
    for pattern in patterns:
        text = prefix + str(pattern.pattern).replace("^", "").replace("$", "").replace("\\Z", "")
        if isinstance(pattern, URLResolver):
            templates += _url_templates(pattern.url_patterns, text)
        else:
            assert isinstance(pattern, URLPattern)
            text = _GROUP.sub(lambda match: "{" + match["name"] + "}", text)
            templates.append("/" + _CONVERTER.sub(lambda match: "{" + match["name"] + "}", text))
    return templates


URL_TEMPLATES = sorted(set(_url_templates(get_resolver().url_patterns)))


@pytest.fixture
def world():
    """A customer with an order, an address and a product, so the URLs' sample parameters name real rows."""
    customer = UserFactory(username="fuzz-customer")
    product = ProductFactory(slug="fuzz-kettle", stock=5)
    order = place_order(customer=customer, status=OrderStatus.PAID)
    samples = {
        "slug": product.slug,
        "number": order.number,
        "address_id": str(customer_address_create(customer=customer, address=CHECKOUT_ADDRESS).pk),
        "object_id": str(order.pk),
        "id": str(customer.pk),
        "content_type_id": "1",
        "app_label": "orders",
        "url": "nowhere/",
        "path": "products/none.png",  # MEDIA_URL, served by the shop when SERVE_MEDIA
        "uidb64": urlsafe_base64_encode(force_bytes(customer.pk)),
        "token": unsubscribe_token(user_id=customer.pk, topics=["order.shipped"], channel=Channel.EMAIL),
    }
    return {"customer": customer, "staff": StaffFactory(username="fuzz-staff"), "samples": samples}


def _params(template: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", template)


def _fill(template: str, samples: dict, **hostile: str) -> str:
    values = {name: quote(hostile[name], safe="%") if name in hostile else samples[name] for name in _params(template)}
    return template.format(**values)


def _requests(template: str, samples: dict):
    """(method, path, form data) for each hostile value in each path parameter, in the query and in a form."""
    path = _fill(template, samples)
    assert resolve(path.split("?")[0]), path  # the sample path is one the URLconf serves
    for value in HOSTILE:
        for name in _params(template):
            yield "get", _fill(template, samples, **{name: value}), None
        query = "&".join(f"{key}={quote(value, safe='%')}" for key in QUERY_KEYS)
        yield "get", f"{path}?{query}", None
        yield "post", path, {key: value for key in QUERY_KEYS + ["username", "quantity", "note", "seq"]}
    for value in ["a\x00b", "9" * 30]:  # each key alone too: one refused parameter can hide the next
        for key in QUERY_KEYS:
            yield "get", f"{path}?{key}={quote(value)}", None


@pytest.mark.parametrize("who", ["anonymous", "customer", "staff"])
def test_every_url_with_hostile_characters_is_a_client_error_never_a_500(world, who):
    client = Client(raise_request_exception=False)
    failures = []
    for template in URL_TEMPLATES:
        if who != "anonymous":
            client.force_login(world[who])  # again for each URL: one of them is logout
        for method, path, data in _requests(template, world["samples"]):
            response = getattr(client, method)(path, data) if data else getattr(client, method)(path)
            if response.status_code >= 500:
                failures.append((method, path, response.status_code))
    assert not failures, failures


@pytest.mark.parametrize("value", HOSTILE)
def test_a_nul_anywhere_in_the_request_is_400_before_any_view(world, value):
    client = Client(raise_request_exception=False)
    client.force_login(world["customer"])
    number = world["samples"]["number"]
    responses = [
        client.get(f"/orders/{quote(number + value, safe='%')}/"),
        client.get("/orders/", {"page": value}),
        client.post("/notifications/read/", {"seq": value}),
        client.get("/orders/", headers={"X-Note": value}),
    ]
    client.force_login(world["staff"])
    autocomplete = {"app_label": "orders", "model_name": "order", "field_name": "customer", "term": value}
    responses.append(client.get("/admin/autocomplete/", autocomplete))
    for response in responses:
        assert response.status_code == 400 if "\x00" in value else response.status_code < 500


@pytest.mark.parametrize(
    "number", ["SO-00000١", "SO-1", "so-000001", "SO-000001'", "SO-000001 ", "x" * 30, "SO-%ED%A0%80"]
)
def test_an_order_number_of_the_wrong_shape_is_404(world, number):
    client = Client(raise_request_exception=False)
    client.force_login(world["customer"])
    response = client.get(f"/orders/{number}/")
    assert response.status_code == 404


def test_the_customer_s_own_order_number_still_opens_the_order(world):
    client = Client()
    client.force_login(world["customer"])
    assert client.get(f"/orders/{world['samples']['number']}/").status_code == 200


# The admin's order change list: every filter, the search, the ordering, the page and the date hierarchy.
CHANGELIST_PARAMS = [
    "status",
    "status__exact",
    "q",
    "o",
    "p",
    "e",
    "created_at__gte",
    "created_at__lt",
    "created_at__year",
    "created_at__month",
    "created_at__day",
    "customer__id__exact",
    "customer__email",
    "_changelist_filters",
    "_to_field",
    "_popup",
    "all",
]


@pytest.mark.parametrize("param", CHANGELIST_PARAMS)
def test_the_admin_order_change_list_answers_hostile_filters_without_a_500(world, param):
    client = Client(raise_request_exception=False)
    client.force_login(world["staff"])
    for value in [*HOSTILE, "9999", "0", "-1", "13", "32"]:
        response = client.get("/admin/orders/order/?" + urlencode({"created_at__year": "2026", param: value}))
        expected = {400} if "\x00" in value else {200, 302, 400}
        assert response.status_code in expected, (value, response.status_code)


def test_a_session_cookie_holding_a_nul_is_no_session_not_a_500(world):
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = "abcdefgh\x00ijklmnop"
    response = client.get("/orders/")
    assert response.status_code == 302  # to the login page, as with any unknown session


@pytest.mark.django_db(transaction=True)
async def test_a_socket_whose_session_cookie_holds_a_nul_is_anonymous_not_an_error():
    # "\000" in a quoted cookie is a NUL once Django has parsed it.
    headers = [
        (b"host", b"testserver"),
        (b"origin", b"http://testserver"),
        (b"cookie", b'sessionid="abcdefgh\\000ijkl"'),
    ]
    communicator = WebsocketCommunicator(application, "/ws/notifications/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_output(timeout=2)) == {"type": "websocket.close", "code": 4401}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "path", ["/ws/notifications/\x00", "/ws/notifications\x00/", "/ws/nowhere/", "/", "/ws/%ED%A0%80/"]
)
async def test_a_socket_on_any_other_path_is_refused_not_an_error(path):
    headers = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    connected, _ = await WebsocketCommunicator(application, path, headers=headers).connect()
    assert not connected
