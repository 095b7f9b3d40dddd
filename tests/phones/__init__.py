"""Real SIP test peers: a pjsua2 phone run as a subprocess and its pytest client."""
