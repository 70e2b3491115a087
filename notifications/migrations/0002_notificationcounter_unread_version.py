from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="notificationcounter",
            name="unread_version",
            field=models.PositiveBigIntegerField(default=0),
        ),
    ]
