"""The one exception hierarchy of fleetpy.

Adapters wrap library exceptions (etcd, D-Bus, paramiko) into these with ``raise ... from err``; the CLI maps
them to exit codes in one place (``fleetpy.cli.exits``). Every message is one line meant for a user.
"""

from __future__ import annotations


class FleetError(Exception):
    """Root of every error fleetpy raises on purpose."""


class UsageError(FleetError):
    """The user asked for something malformed (bad flag value, unknown field...)."""


class UnitFileError(FleetError, ValueError):
    """A unit file could not be parsed or failed validation."""


class UnitNameError(UnitFileError):
    """A unit name breaks fleet's naming rules."""


class RequirementsError(UnitFileError):
    """An ``[X-Fleet]`` section asks for an impossible combination."""


class RegistryError(FleetError):
    """The registry (etcd) failed or refused a request."""


class RegistryUnavailable(RegistryError):
    """No etcd endpoint answered within the request timeout."""


class NotFound(RegistryError, KeyError):
    """A key that must exist does not."""

    def __str__(self) -> str:  # KeyError quotes its message; a user should not see quotes
        return str(self.args[0]) if self.args else "not found"


class CASConflict(RegistryError):
    """A compare-and-swap lost: someone else changed the key first."""


class LeaseLost(FleetError):
    """The engine leader lease is no longer ours."""


class SystemdError(FleetError):
    """A D-Bus call to systemd failed; the message names the call and the unit."""


class TunnelError(FleetError):
    """An SSH connection or tunnel could not be set up."""


class HostKeyError(TunnelError):
    """A host key is unknown (under strict checking) or changed."""


class ConfigError(FleetError):
    """fleetpyd configuration is invalid."""


class LabError(FleetError):
    """The lab could not be created, inspected or torn down."""
