"""ccswitch.api"""
