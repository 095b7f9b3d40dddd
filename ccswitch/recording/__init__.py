"""ccswitch.recording"""
