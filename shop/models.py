from django.db import models
from django.urls import reverse

from shop.images import product_image_extension_validate, product_image_path, product_image_size_validate


class Product(models.Model):
    """An item in the catalog. `stock` only goes down through checkout, under a row lock."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    image = models.ImageField(
        upload_to=product_image_path,
        blank=True,
        width_field="image_width",
        height_field="image_height",
        validators=[product_image_extension_validate, product_image_size_validate],
        help_text="JPEG, PNG or WebP, within the size limit and 4000 pixels a side; square looks best.",
    )
    image_width = models.PositiveIntegerField(null=True, blank=True, editable=False)
    image_height = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(price__gte=0), name="product_price_not_negative"),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("shop:product", kwargs={"slug": self.slug})

    @property
    def in_stock(self) -> bool:
        return self.stock > 0
