"""shop.settings plus the fault: the process is SIGKILLed between a chat message's commit and its publish."""

from shop.settings import *  # noqa: F403
from shop.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.faults.killswitch.KillBeforeChatPublishConfig"]
