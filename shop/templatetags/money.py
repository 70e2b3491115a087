from django import template

from shop.money import money_format

register = template.Library()


@register.filter
def money(amount):
    """`{{ product.price|money }}`: the amount in the shop's currency, for the active language."""
    return money_format(amount)
