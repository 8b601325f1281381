"""Process-wide JAX settings for model fits: host devices, platform and compilation cache.

JAX reads the number of CPU devices once, when its backend starts (the first computation or
device query), not at ``import jax``. :func:`configure_jax` must therefore run before anything
touches a device; later calls still update the compilation cache but cannot change the device
count, and say so with a warning instead of failing.
"""

from __future__ import annotations

import os
import re
import warnings

MAX_HOST_DEVICES = 16  # beyond this, more virtual devices only add thread overhead
_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def default_host_devices(chains: int) -> int:
    """One host device per chain, so chains run in parallel (``chain_method="parallel"``)."""
    return max(1, min(chains, MAX_HOST_DEVICES))


def configure_jax(
    n_host_devices: int, compilation_cache_dir: str | None, platform: str | None = None
) -> None:
    """Set the host device count, platform and persistent compilation cache for this process.

    Safe to call more than once: the XLA flag is replaced rather than appended, and once the
    backend has started a different device count only triggers a warning.
    """
    if n_host_devices < 1:
        raise ValueError(f"n_host_devices must be >= 1, got {n_host_devices}")
    flags = re.sub(rf"{_DEVICE_FLAG}=\S+", "", os.environ.get("XLA_FLAGS", "")).split()
    os.environ["XLA_FLAGS"] = " ".join([*flags, f"{_DEVICE_FLAG}={n_host_devices}"])
    if platform is not None:
        os.environ["JAX_PLATFORMS"] = platform

    import jax
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        if jax.local_device_count() != n_host_devices and jax.default_backend() == "cpu":
            warnings.warn(
                f"JAX already started with {jax.local_device_count()} host devices; "
                f"{n_host_devices} takes effect only in a new process",
                RuntimeWarning,
                stacklevel=2,
            )
    elif platform is not None:
        jax.config.update("jax_platforms", platform)

    if compilation_cache_dir is not None:
        os.makedirs(compilation_cache_dir, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(compilation_cache_dir))
        # The sampler compiles in a few seconds; the defaults would not cache it at all.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
