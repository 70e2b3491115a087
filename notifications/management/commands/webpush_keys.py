"""`manage.py webpush_keys`: a new VAPID key pair for browser push, printed as the environment lines to set."""

from django.core.management.base import BaseCommand, CommandError

from notifications.vapid import vapid_keys_generate, vapid_settings_check


class Command(BaseCommand):
    help = "Generate a VAPID key pair for browser push and print the WEBPUSH_ environment lines to set."

    def add_arguments(self, parser):
        parser.add_argument(
            "--contact", default="", help="How push services reach the shop's operator: mailto:… or https://…"
        )

    def handle(self, *args, contact: str, **options):
        keys = vapid_keys_generate()
        if contact:
            try:
                vapid_settings_check(private_key=keys.private_key, public_key=keys.public_key, contact=contact)
            except ValueError as error:
                raise CommandError(str(error)) from None
        self.stdout.write(f"WEBPUSH_VAPID_PRIVATE_KEY={keys.private_key}")
        self.stdout.write(f"WEBPUSH_VAPID_PUBLIC_KEY={keys.public_key}")
        self.stdout.write(f"WEBPUSH_CONTACT={contact or 'mailto:you@example.com'}")
        if not contact:
            self.stderr.write("Set WEBPUSH_CONTACT to a real mailto: address or https: URL of the shop's operator.")
        self.stderr.write("Keep the private key secret; changing keys makes every browser subscribe again.")
