"""``python -m mmdet_opt``: the ``mmdet-opt`` command (see ``mmdet_opt.cli``)."""
import sys

from .cli import main

sys.exit(main())
