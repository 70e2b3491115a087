"""shop.settings plus the fault: a worker stops inside confirm_payment (see tests.faults.pause_in_task)."""

from shop.settings import *  # noqa: F403
from shop.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faults.pause_in_task.PauseInTaskConfig"]
