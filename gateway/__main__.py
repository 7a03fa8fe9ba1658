from __future__ import annotations

import sys

from gateway.cli.commands import main

sys.exit(main())
