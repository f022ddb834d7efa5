"""Typed keys of the aiohttp application: the one place that names what `app.py` wires together."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

if TYPE_CHECKING:
    from bridge.config import Config
    from bridge.delivery import DeliveryWorker
    from bridge.gateway.client import GatewayClient
    from bridge.metrics import Metrics
    from bridge.poller import Poller
    from bridge.sender import Sender
    from bridge.store import Store
    from bridge.templating import TemplateEngine

CONFIG = web.AppKey("config", "Config")
STORE = web.AppKey("store", "Store")
HTTP = web.AppKey("http", aiohttp.ClientSession)
GATEWAY = web.AppKey("gateway", "GatewayClient")
GATEWAY_URL = web.AppKey("gateway_url", str)  # the upstream base URL in use (the simulator's when in-process)
METRICS = web.AppKey("metrics", "Metrics")
POLLER = web.AppKey("poller", "Poller")
SENDER = web.AppKey("sender", "Sender")
DELIVERY = web.AppKey("delivery", "DeliveryWorker")
TEMPLATES = web.AppKey("templates", "TemplateEngine")  # the one engine of rule, webhook and hook templates
