from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import AddressForm
from accounts.models import ADDRESS_FIELDS
from accounts.selectors import customer_default_address
from accounts.services import customer_address_remember
from orders.services import CheckoutError, order_place
from shop.cart import Cart
from shop.forms import AddToCartForm, CartLineForm, CatalogQueryForm, CheckoutForm
from shop.models import Product
from shop.selectors import catalog_products

CATALOG_PAGE_SIZE = 24


def home(request):
    """The catalog: the active products, searched and sorted as asked, a page at a time."""
    form = CatalogQueryForm(request.GET)
    form.is_valid()  # a bad field is shown with its error; the others still apply
    products = Paginator(catalog_products(**form.catalog()), CATALOG_PAGE_SIZE).get_page(request.GET.get("page"))
    # The page links keep the search and the order.
    query = request.GET.copy()
    query.pop("page", None)
    context = {"products": products, "form": form, "query": query.urlencode()}
    return render(request, "shop/home.html", context, status=400 if form.errors else 200)


def product_detail(request, slug):
    product = get_object_or_404(Product, slug=slug, is_active=True)
    return render(request, "shop/product_detail.html", {"product": product, "form": AddToCartForm()})


@require_POST
def cart_add(request, slug):
    """Add a quantity of a product to the session cart."""
    product = get_object_or_404(Product, slug=slug, is_active=True)
    form = AddToCartForm(request.POST)
    cart = Cart(request.session)
    if not form.is_valid():
        return render(request, "shop/product_detail.html", {"product": product, "form": form}, status=400)
    wanted = cart.as_quantities().get(product.pk, 0) + form.cleaned_data["quantity"]
    if wanted > product.stock:
        form.add_error("quantity", f"Only {product.stock} in stock.")
        return render(request, "shop/product_detail.html", {"product": product, "form": form}, status=400)
    cart.add(product_id=product.pk, quantity=form.cleaned_data["quantity"])
    messages.success(request, f"Added {form.cleaned_data['quantity']} × {product.name} to your cart.")
    return redirect("shop:cart")


def cart_detail(request):
    cart = Cart(request.session)
    lines = cart.lines()
    return render(request, "shop/cart.html", {"lines": lines, "total": sum(line.line_total for line in lines)})


@require_POST
def cart_update(request, slug):
    """Change a cart line's quantity; zero removes it."""
    product = get_object_or_404(Product, slug=slug)
    form = CartLineForm(request.POST)
    if form.is_valid():
        Cart(request.session).set(product_id=product.pk, quantity=form.cleaned_data["quantity"])
    else:
        messages.error(request, f"{product.name}: {form.errors['quantity'][0]}")
    return redirect("shop:cart")


@login_required
@require_http_methods(["GET", "POST"])
def checkout(request):
    """Review the cart, give the name and shipping address, and place the order; prices come from the catalog."""
    cart = Cart(request.session)
    lines = cart.lines()
    if not lines:
        # Nothing to place: the empty-cart state, never a form that could only fail.
        return render(request, "shop/checkout.html", {"lines": []}, status=400 if request.method == "POST" else 200)
    address_form = AddressForm(request.POST or None, initial=checkout_address_initial(request.user))
    form = CheckoutForm(request.POST or None)
    if request.method == "POST" and address_form.is_valid() and form.is_valid():
        address = {field: address_form.cleaned_data[field] for field in ADDRESS_FIELDS}
        try:
            with transaction.atomic():  # the order and the remembered address, or neither
                order = order_place(
                    customer=request.user,
                    quantities=cart.as_quantities(),
                    note=form.cleaned_data["note"],
                    address=address,
                )
                if form.cleaned_data["save_address"]:
                    customer_address_remember(customer=request.user, address=address)
        except CheckoutError as error:
            form.add_error(None, str(error))
        else:
            cart.clear()
            messages.success(request, f"Thank you! Order {order.number} is placed.")
            return redirect(order)
    status = 400 if form.errors or address_form.errors else 200
    context = {
        "lines": lines,
        "total": sum(line.line_total for line in lines),
        "form": form,
        "address_form": address_form,
    }
    return render(request, "shop/checkout.html", context, status=status)


def checkout_address_initial(customer) -> dict[str, str]:
    """What pre-fills checkout's address: the customer's default address, else just their name."""
    if (default := customer_default_address(customer=customer)) is not None:
        return default.as_fields()
    return {"full_name": customer.get_full_name()}
