"""Who may say what on the private bus: per-process credentials and a mosquitto ACL derived from the
module graph.

Every process that talks to the private broker logs in with a user of its own and a random password made
at start (kept in memory and handed to a child in its environment, never written in clear): the runtime
(which hosts the shared modules and is the supervisor), one user per module in its own process, and the
operator (``everpy call`` / ``everpy monitor``, whose password the runtime records in a file only the
service's user and group can read). Nobody logs in anonymously.

A module in its own process may publish only:

* below its own tree ``P/modules/<id>/`` (its vars, errors, the answers to calls of its commands, its
  ready and heartbeat) and its own ``P/everpy/module_state/<id>``;
* the command topics of the implementations its requirements are connected to (``.../cmd/<cmd>``);
* ``P/everpy/flush/...`` (the host's delivery round trip);
* ``P/everpy/system_restart`` if it is a System module, and the external prefix if one is configured.

It reads everything below the prefix (reads change nothing). ``P/ready`` (global ready) and every other
module's lifecycle are the runtime's alone.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from dataclasses import dataclass, field

from everpy.core.config import RunConfig
from everpy.core.wire import Topics

RUNTIME_USER = "everpy-runtime"
OPERATOR_USER = "everpy-operator"
MODULE_USER_PREFIX = "module-"  # no ":" (the password file separates user and hash with it)
RESTART_MODULE_TYPES = frozenset({"System"})  # module types that may ask for a system restart
PBKDF2_ITERATIONS = 101  # mosquitto 2's password-file format: $7$<iterations>$<salt>$<hash>, PBKDF2-SHA512


def module_user(module_id: str) -> str:
    return MODULE_USER_PREFIX + module_id


def password_line(user: str, password: str) -> str:
    """One line of a mosquitto password file (the hash mosquitto_passwd would write), so the clear password
    never has to reach another program's command line."""
    salt = os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    return f"{user}:$7${PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@dataclass
class Credentials:
    """The users of one run and their passwords (in memory only)."""

    passwords: dict[str, str] = field(default_factory=dict)

    def user(self, name: str) -> str:
        """The password of ``name``, made on first use."""
        return self.passwords.setdefault(name, secrets.token_urlsafe(24))

    def password_file(self) -> str:
        return "".join(password_line(user, password) + "\n" for user, password in sorted(self.passwords.items()))


def module_publishes(run_config: RunConfig, module_id: str, topics: Topics, external_prefix: str = "") -> list[str]:
    """The topic filters a module in its own process may publish on."""
    module = run_config.modules[module_id]
    allowed = [f"{topics.module(module_id)}/#", topics.module_state(module_id), f"{topics.prefix}everpy/flush/#"]
    for targets in module.connections.values():
        for target in targets:
            allowed.append(f"{topics.impl(target.module_id, target.implementation_id)}/cmd/+")
    if module.module in RESTART_MODULE_TYPES:
        allowed.append(topics.system_restart)
    if external_prefix:
        allowed.append(external_prefix.rstrip("/") + "/#")
    return sorted(set(allowed))


def acl_file(run_config: RunConfig, own_process: list[str], topics: Topics, external_prefix: str = "") -> str:
    """The mosquitto ACL of a run: the runtime and the operator may do anything below the prefix, a module
    in its own process what :func:`module_publishes` allows, and reads everywhere below the prefix."""
    everything = f"{topics.prefix}#"
    lines = []
    for user in (RUNTIME_USER, OPERATOR_USER):
        lines += [f"user {user}", f"topic readwrite {everything}"]
        if external_prefix:
            lines.append(f"topic readwrite {external_prefix.rstrip('/')}/#")
        lines.append("")
    for module_id in own_process:
        lines += [f"user {module_user(module_id)}", f"topic read {everything}"]
        lines += [f"topic write {pattern}" for pattern in module_publishes(run_config, module_id, topics,
                                                                           external_prefix)]
        lines.append("")
    return "\n".join(lines)
