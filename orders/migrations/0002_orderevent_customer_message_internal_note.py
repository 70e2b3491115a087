"""Split the history's one `note` into a message to the customer and an internal note.

Every existing note becomes internal: staff wrote them in a field that did not say the customer would
read them, so none of them is known to be meant for the customer; hiding one loses nothing (staff still
see it in the History), showing one could expose what was never meant to leave the shop.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0001_initial'),
    ]

    operations = [
        migrations.RenameField(
            model_name='orderevent',
            old_name='note',
            new_name='internal_note',
        ),
        migrations.AlterField(
            model_name='orderevent',
            name='internal_note',
            field=models.TextField(blank=True, max_length=1000, verbose_name='internal note (never shown to the customer)'),
        ),
        migrations.AddField(
            model_name='orderevent',
            name='customer_message',
            field=models.TextField(blank=True, max_length=1000, verbose_name='message to the customer (shown to them)'),
        ),
    ]
