#!/usr/bin/env python
"""The example Django project's manage.py: python examples/django_project/manage.py runserver"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    # The project package, and the checkout's root (for `examples.web_tasks`).
    sys.path[:0] = [str(here), str(here.parent.parent)]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
