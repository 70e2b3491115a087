"""A fault injected into a server process: it dies the instant a commit would be published.

Installed only through tests.faults.settings_kill_before_publish, in a process that a
fault test starts; never in the shop itself.
"""

import os
import signal

from django.apps import AppConfig


class KillBeforePublishConfig(AppConfig):
    name = "tests.faults"
    label = "faults_killswitch"

    def ready(self):
        from notifications import services

        def die(**kwargs):
            # Called from transaction.on_commit: the change and its notification row are
            # committed, the publish has not happened. SIGKILL: no cleanup, no goodbye.
            os.kill(os.getpid(), signal.SIGKILL)

        services.notifications_send = die  # every publish, of one change, of a batch or the sweeper's, ends here
