"""ccswitch.state"""
