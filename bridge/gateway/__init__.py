"""The SmsGateway24 upstream: typed client, models and a faithful simulator."""
