from django.contrib.auth import login
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from accounts.forms import SignUpForm


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
