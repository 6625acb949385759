"""The built-in proxy's config vars, checked by the wrapper and the build before it runs.

TRAFFIC_DUPLICATOR_PROXY_PROCESSES and TRAFFIC_DUPLICATOR_EPOLL are read by the built-in
proxy alone. Checked only there, a typo made the proxy exit 2 at every start and the
supervisor give the dyno up. So once the engines are chosen, the wrapper at boot and the build
(`wrapper.explain`) read them with the proxy's own reader (`proxy.config.read_environment`):
a bad value is one line before anything starts, or a failed push.

With em-proxy chosen nothing reads them, so they are not checked: like the
TRAFFIC_DUPLICATOR_COMPARE_* vars with comparison off, a leftover value cannot stop a dyno
that does not use it.
"""

from __future__ import annotations

from collections.abc import Mapping

from traffic_duplicator.proxy.config import ProxyEnvironment, read_environment
from traffic_duplicator.wrapper.engines import EnginePlan, ProxyKind


def builtin_proxy_settings(plan: EnginePlan, env: Mapping[str, str]) -> ProxyEnvironment | None:
    """None when the plan runs em-proxy; else the proxy's vars, or ProxySettingsError (a
    UserError: one line naming the var, its value and what to use)."""
    if plan.proxy is not ProxyKind.BUILTIN:
        return None
    return read_environment(env)
