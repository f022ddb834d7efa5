"""smsgateway24-bridge: SmsGateway24 as events, webhooks, auto-replies and an HTTP send API."""

__version__ = "0.1.0"
