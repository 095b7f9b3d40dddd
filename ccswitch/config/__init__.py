"""Configuration loader: service YAML and dialplan YAML into the typed objects of ``model``.

The loader is the only place that sees raw YAML. It validates everything it can
in one pass and reports *all* problems together, each as a
:class:`~ccswitch.errors.ConfigError` naming the file, the dotted key
(``queues.support.ring_timeout``, ``routes[1].pattern``) and the reason, with
the line number when it is known. ``ccswitch check`` and ``ccswitch run`` both
go through :func:`check_config`, so what ``check`` accepts is what ``run`` runs.

Relative paths resolve against the directory of the file that names them:
``recordings.directory`` and ``dialplans`` against the service config,
``announcement`` and ``music_on_hold`` against the dialplan file.

Route precedence: exact ``number`` routes are tried before any ``pattern``
route (exact numbers are unique, so their order never matters); pattern routes
are tried in file order (files sorted by name, then top to bottom). Patterns
must match the whole dialed number (``re.fullmatch``).

The loader is a package, one module per job: :mod:`~ccswitch.config.checker`
(YAML with line numbers, the problem report), :mod:`~ccswitch.config.values`
(addresses, URIs, paths, sounds), :mod:`~ccswitch.config.service` (the service
config file), :mod:`~ccswitch.config.dialplan` (one dialplan file),
:mod:`~ccswitch.config.calendars` (a business-hours calendar in a dialplan) and
:mod:`~ccswitch.config.loading` (dialplan files merged and cross-checked).
"""

from __future__ import annotations

from ccswitch.config.checker import CheckResult, ConfigErrors
from ccswitch.config.loading import load_dialplan_file, load_dialplans
from ccswitch.config.service import COMPRESSED_FORMATS, check_config, load_config
from ccswitch.config.values import read_token

__all__ = [
    "COMPRESSED_FORMATS", "CheckResult", "ConfigErrors", "check_config", "load_config",
    "load_dialplan_file", "load_dialplans", "read_token",
]
