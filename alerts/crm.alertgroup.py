"""grafanalib's convention: this file defines ``alertgroup``.

    CRMPULSE_CONFIG=crmpulse.yaml generate-alertgroup -o crmpulse-alerts.json alerts/crm.alertgroup.py

builds the Grafana-managed twins of the Prometheus alerts ``crmpulse alerts`` writes
(``crmpulse alerts`` also writes them, as ``grafana-alerting.json``).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crmpulse import load_config
from crmpulse.alerts.grafana import alert_group
from crmpulse.alerts.rules import build_rules

alertgroup = alert_group("crmpulse", build_rules(
    load_config(os.environ.get("CRMPULSE_CONFIG", "crmpulse.yaml"))).alerts)
