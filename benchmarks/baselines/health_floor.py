"""B1 floor: what any heartbeat check must do: read the file, parse it, exit by its status."""

import json
import os
import sys

with open(os.environ["APP_HEARTBEAT_FILE"], "rb") as file:
    beat = json.load(file)
sys.exit(beat["status"] not in ("starting", "running"))
