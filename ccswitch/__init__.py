"""ccswitch: SIP call routing and recording for hybrid contact centers."""

__version__ = "0.1.0"
