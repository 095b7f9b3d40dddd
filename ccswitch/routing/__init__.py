"""ccswitch.routing"""
