"""traffic-duplicator: mirror a Heroku app's live HTTP traffic to other destinations."""

__version__ = "0.1.0"
