"""ccswitch.metrics"""
