from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from accounts.forms import AddressForm, ProfileForm, SignUpForm
from accounts.models import CustomerAddress, User
from accounts.selectors import customer_address_of, customer_addresses
from accounts.services import (
    customer_address_create,
    customer_address_delete,
    customer_address_make_default,
    customer_address_update,
    user_profile_update,
)


@require_http_methods(["GET", "POST"])
def signup(request):
    """Create a customer account and sign the new customer in."""
    if request.user.is_authenticated:
        return redirect("shop:home")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        next_url = request.GET.get("next", "")
        # Only ever redirect within this site (no open redirect through ?next=).
        safe = url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure())
        return redirect(next_url if safe else "shop:home")
    return render(request, "accounts/signup.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def account(request):
    """The account page: email and name (a POST changes them), the address book, and links to the rest."""
    # A copy, so a refused form never leaves its values on the request's user (the header shows it).
    form = ProfileForm(request.POST or None, instance=User.objects.get(pk=request.user.pk))
    if request.method == "POST" and form.is_valid():
        user_profile_update(user=request.user, **form.cleaned_data)
        messages.success(request, "Your details are saved.")
        return redirect("accounts:account")
    context = {"form": form, "addresses": customer_addresses(customer=request.user)}
    return render(request, "accounts/account.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def address_create(request):
    """Add an address to the book."""
    form = AddressForm(request.POST or None, initial={"full_name": request.user.get_full_name()})
    if request.method == "POST" and form.is_valid():
        customer_address_create(customer=request.user, address=form.cleaned_data)
        messages.success(request, "The address is added.")
        return redirect("accounts:account")
    context = {"form": form, "title": "Add an address"}
    return render(request, "accounts/address_form.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def address_edit(request, address_id: int):
    """Change one of my addresses; anyone else's is a 404. Orders placed with it keep their copy."""
    entry = _own_address(request, address_id)
    form = AddressForm(request.POST or None, initial=entry.as_fields())
    if request.method == "POST" and form.is_valid():
        customer_address_update(entry=entry, address=form.cleaned_data)
        messages.success(request, "The address is saved.")
        return redirect("accounts:account")
    context = {"form": form, "title": "Edit the address", "entry": entry}
    return render(request, "accounts/address_form.html", context, status=400 if form.errors else 200)


@login_required
@require_POST
def address_delete(request, address_id: int):
    customer_address_delete(entry=_own_address(request, address_id))
    messages.success(request, "The address is deleted.")
    return redirect("accounts:account")


@login_required
@require_POST
def address_make_default(request, address_id: int):
    customer_address_make_default(entry=_own_address(request, address_id))
    messages.success(request, "That address will fill in your next checkout.")
    return redirect("accounts:account")


def _own_address(request, address_id: int) -> CustomerAddress:
    try:
        return customer_address_of(customer=request.user, address_id=address_id)
    except CustomerAddress.DoesNotExist:
        raise Http404("No such address.") from None
