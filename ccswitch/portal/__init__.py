"""The supervisor portal: login, roles, a live wallboard, vendor vs in-house KPIs and
recording playback, served under ``/portal`` on the node's HTTP port (see README)."""
